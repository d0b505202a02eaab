"""A minimal HTTP/1.1 client for the load generator: keep-alive, content-length and chunked.

One ``Connection`` carries one request at a time over an asyncio ``Protocol``;
it is several times cheaper per request than a general-purpose client, which is
what lets one core drive thousands of requests a second (see docs/load.md).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

__all__ = ["ConnectError", "Connection", "ProtocolError", "Response", "Target", "build_request"]


class ConnectError(Exception):
    """The connection could not be opened."""


class ProtocolError(Exception):
    """The connection closed or sent something that is not an HTTP/1.1 response."""


@dataclass(frozen=True)
class Target:
    """Where requests go: scheme, host, port and the Host header value."""

    scheme: str
    host: str
    port: int
    base_path: str = ""

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@dataclass
class Response:
    """A parsed response; ``sent`` and ``received`` are ``time.monotonic()`` readings.

    ``sent`` is taken just before the request was written, ``received`` when the
    read that completed the response was handed to the protocol, before any
    other task runs: so neither includes time spent waiting for the event loop
    to resume the caller.
    """

    status: int
    head: bytes
    body: bytes
    sent: float = 0.0
    received: float = 0.0

    def headers(self) -> dict[str, str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        out: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            if name:
                out[name.strip().lower()] = value.strip()
        return out


def build_request(
    target: Target, method: str, path: str, headers: dict[str, str], body: bytes
) -> bytes:
    """The bytes of one request, built once and sent many times."""
    lines = [f"{method.upper()} {target.base_path}{path} HTTP/1.1", f"Host: {target.host_header}"]
    names = {name.lower() for name in headers}
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if "user-agent" not in names:
        lines.append("User-Agent: controltower-load")
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_NO_BODY = frozenset((204, 304))


def _parse(buffer: bytearray, head_only: bool) -> tuple[Response, int, bool] | None:
    """A complete response at the start of ``buffer``: (response, bytes used, keep alive)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end])
    if not head.startswith(b"HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x response: {head[:40]!r}")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ProtocolError(f"bad status line: {head[:40]!r}") from None
    lowered = head.lower()
    keep_alive = b"\r\nconnection: close" not in lowered and not head.startswith(b"HTTP/1.0")
    start = end + 4
    if head_only or status in _NO_BODY or 100 <= status < 200:
        return Response(status, head, b""), start, keep_alive
    at = lowered.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = lowered.find(b"\r\n", at + 2)
        length = int(lowered[at + 17 : stop if stop >= 0 else None])
        if len(buffer) - start < length:
            return None
        return (
            Response(status, head, bytes(buffer[start : start + length])),
            start + length,
            keep_alive,
        )
    if b"\r\ntransfer-encoding: chunked" in lowered:
        body = bytearray()
        pos = start
        while True:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                return Response(status, head, bytes(body)), trailer_end + 4, keep_alive
            chunk_start = line_end + 2
            if len(buffer) < chunk_start + size + 2:
                return None
            body += buffer[chunk_start : chunk_start + size]
            pos = chunk_start + size + 2
    return None  # body until close: completed in connection_lost


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.head_only = False
        self.keep_alive = True
        self.got_data = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.got_data = True
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = _parse(self.buffer, self.head_only)
        except (ProtocolError, ValueError) as exc:
            waiter.set_exception(ProtocolError(str(exc)))
            self._abort()
            return
        if parsed is not None:
            response, used, self.keep_alive = parsed
            response.received = now
            del self.buffer[:used]
            waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0 and self.buffer.startswith(b"HTTP/1."):
            head = bytes(self.buffer[:end])
            try:
                status = int(head[9:12])
                body = bytes(self.buffer[end + 4 :])
                waiter.set_result(Response(status, head, body, received=time.monotonic()))
            except ValueError:
                waiter.set_exception(ProtocolError("bad status line"))
            return
        waiter.set_exception(ProtocolError(f"connection closed: {exc or 'by the server'}"))

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True


class Connection:
    """One keep-alive connection; ``request`` reconnects when the server closed it."""

    def __init__(
        self, target: Target, *, timeout: float, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._protocol: _Protocol | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        secure = self.ssl_context if self.target.scheme == "https" else None
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    _Protocol,
                    self.target.host,
                    self.target.port,
                    ssl=secure,
                    server_hostname=self.target.host if secure else None,
                ),
                self.timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from None
        self._protocol = protocol

    async def request(self, payload: bytes, *, head: bool = False) -> Response:
        """Send ``payload`` and wait for its response; raises TimeoutError on timeout."""
        protocol = self._protocol
        reused = protocol is not None and not protocol.closed
        if not reused:
            await self.connect()
        try:
            return await self._exchange(payload, head)
        except ProtocolError:
            if not reused or (self._protocol is not None and self._protocol.got_data):
                raise
            await self.connect()  # the server closed an idle keep-alive connection: retry once
            return await self._exchange(payload, head)

    async def _exchange(self, payload: bytes, head: bool) -> Response:
        protocol = self._protocol
        assert protocol is not None and protocol.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        protocol.waiter = waiter
        protocol.head_only = head
        protocol.got_data = False
        sent = time.monotonic()
        protocol.transport.write(payload)
        handle = loop.call_later(self.timeout, _expire, waiter)
        try:
            response = await waiter
        except TimeoutError:
            protocol._abort()
            raise
        finally:
            handle.cancel()
            protocol.waiter = None
        if not protocol.keep_alive:
            protocol._abort()
        response.sent = sent
        return response

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol._abort()
            self._protocol = None


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
