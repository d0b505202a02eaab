"""The local target every monitor checks: a tiny keep-alive HTTP/1.1 server on raw asyncio.

    python -m benchmarks.monitor.target --port 18650

Any ``GET`` answers ``200 {"status":"pass"}``. It runs in its own process (with
uvloop when installed) so that its CPU is not counted against either monitor.
It prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

BODY = b'{"status":"pass"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class Answer(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, host, port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve(args.host, args.port))
        else:
            uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
