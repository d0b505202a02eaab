"""A minimal HTTP/1.1 client for the load generator and the monitors: keep-alive, httptools framing.

One ``Connection`` carries one request at a time over an asyncio ``Protocol``;
it is several times cheaper per request than a general-purpose client, which is
what lets one core drive thousands of requests a second (see docs/load.md).
Responses are framed by ``controltower.http1`` (httptools), like the proxy's.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from controltower.clock import system_clock
from controltower.http1 import MessageError, ResponseParser

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
    """A parsed response; ``sent`` and ``received`` are ``system_clock.monotonic()`` readings.

    ``sent`` is taken just before the request was written, ``received`` when the
    read that completed the response was handed to the protocol, before any
    other task runs: so neither includes time spent waiting for the event loop
    to resume the caller.
    """

    status: int
    header_list: list[tuple[bytes, bytes]]
    body: bytes
    sent: float = 0.0
    received: float = 0.0

    def headers(self) -> dict[str, str]:
        """Header names in lower case; the first value of a repeated header wins."""
        out: dict[str, str] = {}
        for name, value in self.header_list:
            out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1").strip())
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


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.waiter: asyncio.Future[Response] | None = None
        self.keep_alive = True
        self.got_data = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        now = system_clock.monotonic()
        self.got_data = True
        waiter = self.waiter
        try:
            complete = self.parser.feed(data)
        except MessageError as exc:
            if waiter is not None and not waiter.done():
                waiter.set_exception(ProtocolError(f"not an HTTP/1.x response: {exc}"))
            self._abort()
            return
        if complete is not None and waiter is not None and not waiter.done():
            self.keep_alive = complete.head.keep_alive
            waiter.set_result(
                Response(complete.status, complete.head.headers, complete.body, received=now)
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        complete = self.parser.eof()
        if complete is not None:
            waiter.set_result(
                Response(
                    complete.status,
                    complete.head.headers,
                    complete.body,
                    received=system_clock.monotonic(),
                )
            )
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
        protocol.parser.expect_head_only(head)
        protocol.got_data = False
        sent = system_clock.monotonic()
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
