"""tower's reverse proxy: an atomic routing table, a weighted split, draining, metrics.

HTTP/1.1 with keep-alive on both sides. A request goes to a release chosen by
weight, then to one of that release's running instances in turn. A request
that could not be sent (connection refused, or a pooled connection the app had
closed) is retried on a fresh connection, so switching and draining lose
nothing. Every answered request is counted per release for the analysis.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_IDEMPOTENT = {b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"}
_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"te",
    b"trailer",
}
_MAX_HEAD = 64 * 1024
_KEEP = 300.0


class UpstreamFailed(Exception):
    """The request could not be delivered; ``sent`` says whether any byte went out."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class Target:
    """One app instance the proxy may send requests to."""

    id: str
    release: str
    host: str
    port: int
    routable: bool = True
    inflight: int = 0
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)

    def close_idle(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


@dataclass
class Sample:
    at: float
    latency: float
    error: bool


class Metrics:
    """Per-release request samples over the last few minutes."""

    def __init__(self, keep: float = _KEEP) -> None:
        self.keep = keep
        self.samples: dict[str, deque[Sample]] = {}
        self.totals: dict[str, list[int]] = {}

    def record(self, release: str, latency: float, error: bool) -> None:
        now = time.monotonic()
        queue = self.samples.setdefault(release, deque())
        queue.append(Sample(now, latency, error))
        totals = self.totals.setdefault(release, [0, 0])
        totals[0] += 1
        totals[1] += int(error)
        while queue and queue[0].at < now - self.keep:
            queue.popleft()

    def window(self, release: str, seconds: float) -> dict[str, Any]:
        since = time.monotonic() - seconds
        chosen = [s for s in self.samples.get(release, ()) if s.at >= since]
        latencies = sorted(s.latency for s in chosen)
        errors = sum(s.error for s in chosen)
        count = len(chosen)
        totals = self.totals.get(release, [0, 0])

        def quantile(q: float) -> float | None:
            if not latencies:
                return None
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

        return {
            "release": release,
            "window": seconds,
            "requests": count,
            "errors": errors,
            "error_rate": errors / count if count else 0.0,
            "p50": quantile(0.50),
            "p95": quantile(0.95),
            "p99": quantile(0.99),
            "total_requests": totals[0],
            "total_errors": totals[1],
        }


class RoutingTable:
    """Release weights and instances; replaced as a whole, never edited in place."""

    def __init__(self, weights: dict[str, float], targets: list[Target]) -> None:
        self.weights = {release: w for release, w in weights.items() if w > 0}
        self.targets = targets
        self._cycles: dict[str, itertools.cycle[Target]] = {}
        self._by_release: dict[str, list[Target]] = {}
        for target in targets:
            self._by_release.setdefault(target.release, []).append(target)
        releases = [r for r in self.weights if self._by_release.get(r)]
        total = sum(self.weights[r] for r in releases)
        self._releases = releases
        self._cumulative: list[float] = []
        running = 0.0
        for release in releases:
            running += self.weights[release] / total if total else 0
            self._cumulative.append(running)

    def choose(self, exclude: set[str]) -> Target | None:
        if not self._releases:
            return None
        index = bisect.bisect_left(self._cumulative, random.random())
        first = self._releases[min(index, len(self._releases) - 1)]
        for release in [first, *self._releases]:
            candidates = [
                t for t in self._by_release.get(release, []) if t.routable and t.id not in exclude
            ]
            if candidates:
                return min(candidates, key=lambda t: t.inflight + random.random())
        for target in self.targets:
            if target.routable and target.id not in exclude and target.release in self.weights:
                return target
        return None


class Proxy:
    """The proxy server. ``table`` is swapped atomically by ``update``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_error: Callable[[str], None] | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        self.table = RoutingTable({}, [])
        self.metrics = Metrics()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.on_error = on_error or (lambda message: None)
        self.server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=_MAX_HEAD, backlog=1024, reuse_address=True
        )
        sockets = self.server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            for writer in list(self._clients):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    def update(self, weights: dict[str, float], targets: list[Target]) -> None:
        """Install a new routing table in one assignment; drop pooled connections of old targets."""
        previous = self.table
        self.table = RoutingTable(weights, targets)
        kept = {id(t) for t in targets if t.routable}
        for target in previous.targets:
            if id(target) not in kept:
                target.close_idle()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        peer = writer.get_extra_info("peername")
        client_ip = peer[0].encode() if peer else b"127.0.0.1"
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                try:
                    method, target_path, version, headers = _parse_request(head)
                    body = await _read_body(reader, headers)
                except ValueError:
                    writer.write(_simple(400, b"bad request"))
                    await writer.drain()
                    return
                keep_alive = version == b"HTTP/1.1" and _header(headers, b"connection") != b"close"
                ok = await self._forward(
                    method, target_path, headers, body, writer, keep_alive, client_ip
                )
                if not ok or not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _forward(
        self,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        client: asyncio.StreamWriter,
        keep_alive: bool,
        client_ip: bytes,
    ) -> bool:
        tried: set[str] = set()
        last_error = "no release is routed"
        release = ""
        started = time.monotonic()
        for _attempt in range(4):
            target = self.table.choose(tried)
            if target is None:
                break
            release = target.release
            target.inflight += 1
            try:
                return await self._exchange(
                    target, method, path, headers, body, client, keep_alive, client_ip, started
                )
            except UpstreamFailed as exc:
                last_error = f"{target.id}: {exc}"
                tried.add(target.id)
                if not exc.retryable:
                    break
            finally:
                target.inflight -= 1
        self.on_error(last_error)
        if release:
            self.metrics.record(release, time.monotonic() - started, True)
        client.write(_simple(502, b"no healthy upstream"))
        await client.drain()
        return keep_alive

    async def _connection(
        self, target: Target, fresh: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while target.idle and not fresh:
            reader, writer = target.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port, limit=_MAX_HEAD),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamFailed(f"connect failed: {exc}", retryable=True) from None
        return reader, writer, False

    async def _exchange(
        self,
        target: Target,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        client: asyncio.StreamWriter,
        keep_alive: bool,
        client_ip: bytes,
        started: float,
    ) -> bool:
        request = _request_bytes(method, path, headers, body, client_ip)
        for fresh in (False, True):
            reader, writer, pooled = await self._connection(target, fresh)
            try:
                writer.write(request)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
            except (
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ConnectionError,
                TimeoutError,
            ) as exc:
                writer.close()
                if pooled and method in _IDEMPOTENT:
                    continue
                raise UpstreamFailed(
                    f"no response ({type(exc).__name__})", retryable=method in _IDEMPOTENT
                ) from None
            break
        else:  # pragma: no cover - the loop always breaks or raises
            raise UpstreamFailed("no response", retryable=False)
        status, response_headers = _parse_response(head)
        upstream_keep = _header(response_headers, b"connection") != b"close"
        out = bytearray(head.split(b"\r\n", 1)[0] + b"\r\n")
        for name, value in response_headers:
            if name.lower() in _HOP:
                continue
            out += name + b": " + value + b"\r\n"
        out += b"x-tower-release: " + target.release.encode() + b"\r\n"
        chunked = b"chunked" in (_header(response_headers, b"transfer-encoding") or b"").lower()
        length = _header(response_headers, b"content-length")
        no_body = method == b"HEAD" or status in (204, 304) or 100 <= status < 200
        until_close = not no_body and not chunked and length is None
        if chunked and not no_body:
            out += b"transfer-encoding: chunked\r\n"
        if until_close or not keep_alive:
            out += b"connection: close\r\n"
            keep_alive = False
        else:
            out += b"connection: keep-alive\r\n"
        out += b"\r\n"
        try:
            client.write(bytes(out))
            if not no_body:
                if chunked:
                    await _copy_chunked(reader, client)
                elif length is not None:
                    await _copy_exact(reader, client, int(length))
                else:
                    upstream_keep = False
                    while data := await reader.read(65536):
                        client.write(data)
                        await client.drain()
            await client.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            writer.close()
            self.metrics.record(target.release, time.monotonic() - started, True)
            return False
        self.metrics.record(target.release, time.monotonic() - started, status >= 500)
        if upstream_keep and target.routable and len(target.idle) < 64:
            target.idle.append((reader, writer))
        else:
            writer.close()
        return keep_alive


def _parse_request(head: bytes) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise ValueError("bad request line")
    return parts[0], parts[1], parts[2], _parse_headers(lines[1:])


def _parse_response(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError("bad status line from upstream")
    return int(parts[1]), _parse_headers(lines[1:])


def _parse_headers(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("bad header")
        headers.append((name.strip(), value.strip()))
    return headers


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]]) -> bytes:
    if b"chunked" in (_header(headers, b"transfer-encoding") or b"").lower():
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = _header(headers, b"content-length")
    if length is None:
        return b""
    if not length.isdigit():
        raise ValueError("bad content-length")
    return await reader.readexactly(int(length)) if int(length) else b""


def _request_bytes(
    method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes, client_ip: bytes
) -> bytes:
    out = bytearray(method + b" " + path + b" HTTP/1.1\r\n")
    forwarded_for = None
    for name, value in headers:
        lower = name.lower()
        if lower in _HOP or lower == b"content-length":
            continue
        if lower == b"x-forwarded-for":
            forwarded_for = value
            continue
        out += name + b": " + value + b"\r\n"
    chain = forwarded_for + b", " + client_ip if forwarded_for else client_ip
    out += b"x-forwarded-for: " + chain + b"\r\n"
    if body or method in (b"POST", b"PUT", b"PATCH"):
        out += b"content-length: " + str(len(body)).encode() + b"\r\n"
    out += b"connection: keep-alive\r\n\r\n"
    return bytes(out) + body


async def _copy_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    while n > 0:
        data = await reader.read(min(n, 65536))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        writer.write(data)
        n -= len(data)
        if n > 0:
            await writer.drain()


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    return
        await _copy_exact(reader, writer, size + 2)
        await writer.drain()


def _simple(status: int, text: bytes) -> bytes:
    reason = {400: b"Bad Request", 502: b"Bad Gateway"}.get(status, b"Error")
    return b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        reason,
        len(text),
        text,
    )
