"""A small local HTTP/1.1 target with injected latency, for tests and benchmarks.

    python -m controltower.load.target --port 8080 --latency uniform:10ms:30ms
    python -m controltower.load.target --port 8080 --latency fixed:20ms --stall-at 2 --stall-for 1

Every request waits as ``--latency`` says (``none``, ``fixed:20ms``,
``uniform:10ms:30ms``); with ``--stall-at`` the whole server stops answering for
``--stall-for`` seconds, that long after the first request. Paths:
``/login`` answers ``{"token": ...}``, ``/private`` wants ``Authorization: Bearer
<that token>`` (else 401), ``/status/<code>`` answers that status, ``/chunked``
answers with a chunked body, ``/__delays`` lists the delays actually applied (seconds),
``/__count`` says how many requests were answered and ``/__connections`` how many
connections were opened (in this process), ``/close`` answers with ``Connection:
close`` and closes; everything else answers 200 ``ok``. ``--tls-cert`` and
``--tls-key`` serve HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import ssl
from typing import cast

from controltower.clock import system_clock
from controltower.units import parse_duration

TOKEN = "t0ken-42"


class Latency:
    def __init__(self, text: str, seed: int = 7) -> None:
        kind, *args = text.split(":")
        self.kind = kind
        self.args = [parse_duration(arg) for arg in args]
        self.random = random.Random(seed)
        if kind not in ("none", "fixed", "uniform") or len(self.args) != {
            "none": 0,
            "fixed": 1,
            "uniform": 2,
        }.get(kind):
            raise ValueError(f"latency {text!r}: use none, fixed:20ms or uniform:10ms:30ms")

    def draw(self) -> float:
        if self.kind == "fixed":
            return self.args[0]
        if self.kind == "uniform":
            return self.random.uniform(self.args[0], self.args[1])
        return 0.0


class Server:
    def __init__(self, latency: Latency, stall_at: float | None, stall_for: float) -> None:
        self.latency = latency
        self.stall_at = stall_at
        self.stall_for = stall_for
        self.first: float | None = None
        self.delays: list[float] = []
        self.count = 0
        self.connections = 0

    def delay(self) -> float:
        now = system_clock.monotonic()
        if self.first is None:
            self.first = now
        wait = self.latency.draw()
        if self.stall_at is not None:
            begin = self.first + self.stall_at
            end = begin + self.stall_for
            if begin <= now < end:
                wait = max(wait, end - now)
        return wait

    def respond(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        if path == "/__delays":
            return _response(200, json.dumps(self.delays).encode(), "application/json")
        if path == "/__count":
            return _response(200, str(self.count).encode())
        if path == "/__connections":
            return _response(200, str(self.connections).encode())
        self.count += 1
        if path == "/close":
            return _response(200, b"bye", close=True)
        if path == "/login":
            return _response(200, json.dumps({"token": TOKEN}).encode(), "application/json")
        if path == "/private":
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return _response(401, b"unauthorized")
            return _response(200, b"secret ok")
        if path.startswith("/status/"):
            return _response(int(path.rsplit("/", 1)[1] or 200), b"status")
        if path == "/chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            return head + b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        return _response(200, b"ok", head=method == "HEAD")


def _response(
    status: int, body: bytes, kind: str = "text/plain", head: bool = False, close: bool = False
) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        f"{connection}\r\n"
    ).encode() + (b"" if head else body)


def _closes(response: bytes) -> bool:
    return b"\r\nConnection: close\r\n" in response[: response.find(b"\r\n\r\n") + 2]


class _Protocol(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[bytes, float, float]] | None = None
        self.writer: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, path = lines[0].split(" ")[:2]
            response = self.server.respond(method, path, headers)
            if path.startswith("/__"):
                assert self.transport is not None
                self.transport.write(response)
                continue
            arrived = system_clock.monotonic()
            wait = self.server.delay()
            if wait <= 0 and self.queue is None:
                assert self.transport is not None
                self.transport.write(response)
                if _closes(response):
                    self.transport.close()
                    return
                continue
            if self.queue is None:
                self.queue = asyncio.Queue()
                self.writer = asyncio.get_running_loop().create_task(self._write())
            self.queue.put_nowait((response, arrived, arrived + wait))

    async def _write(self) -> None:
        assert self.queue is not None and self.transport is not None
        while True:
            response, arrived, due = await self.queue.get()
            await asyncio.sleep(max(0.0, due - system_clock.monotonic()))
            if self.transport.is_closing():
                return
            self.transport.write(response)
            self.server.delays.append(system_clock.monotonic() - arrived)
            if _closes(response):
                self.transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self.writer is not None:
            self.writer.cancel()


async def serve(
    port: int,
    server: Server,
    sock: socket.socket | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
    listener = await loop.create_server(lambda: _Protocol(server), sock=sock, backlog=2048, ssl=tls)
    async with listener:
        await listener.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", default="none")
    parser.add_argument("--stall-at", type=float, default=None)
    parser.add_argument("--stall-for", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this key (PEM)")
    args = parser.parse_args(argv)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    for _ in range(args.processes - 1):
        if os.fork() == 0:
            break
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    server = Server(Latency(args.latency), args.stall_at, args.stall_for)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, server, tls=tls))


if __name__ == "__main__":
    main()
