"""tower's reverse proxy: an atomic routing table, a sticky weighted split, draining, metrics.

HTTP/1.1 with keep-alive on both sides, framed by ``controltower.http1``
(httptools). A request goes to a release, then to the least busy running
instance of that release. The release is, in order:

1. the one a *pin* names (``Proxy(pins=...)``: a function of the request head
   returning a release id), if that release is routed. One pin is built in:
   Next.js sends the build's ``deploymentId`` as ``x-deployment-id`` on client
   navigations and answers them with ``x-nextjs-deployment-id``; the proxy
   remembers which release answered with which deployment id and keeps a
   request naming one on that release, so a page never navigates into
   another build (https://nextjs.org/docs/app/api-reference/config/next-config-js/deploymentId);
2. the one the ``tower-split`` cookie names. Its value is ``<bucket>.<tag>``:
   the client's bucket, a random 32-bit point on the split drawn at its first
   request (as kamal-proxy hashes its rollout cookie to a point), and a hash of
   the release that request got. While that release is routed the client stays
   on it whatever the weights become, so a browser session sees one release
   for a whole canary; when it is no longer routed the bucket decides again;
3. the weights, at the bucket's point (a request without the cookie draws a
   fresh point, so cookie-less traffic splits by weight request by request).

A response that chose a release for the client sets the cookie (path ``/``,
``HttpOnly``, ``SameSite=Lax``, for the browser session) during a split, and
at any time for a browser (a request with ``Sec-Fetch-Mode``, which browsers
send), so a page loaded before a canary pins its session; other clients
outside a split (scanners, probes, API clients) get no cookie.

Bodies stream both ways in pieces of at most 64 KiB and are never held whole.
An ``Upgrade`` request (WebSocket) that the app accepts with 101 becomes a
byte tunnel between client and instance, which later routing changes leave
alone. A request that could not be delivered (connection refused, or a pooled
connection the app had closed) is retried on a fresh connection or another
instance while no byte of its answer has arrived and what it sent (up to 64
KiB of body) can be sent again. Every answered request is counted per release
for the analysis.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from controltower.http1 import Head, Incoming, MessageError

COOKIE = "tower-split"
_MAX_DEPLOYMENTS = 64
_COOKIE_KEY = COOKIE.encode()
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
_PIECE = 64 * 1024
_REPLAY = 64 * 1024
_KEEP = 300.0

_T = TypeVar("_T")
Pin = Callable[[Head], "str | None"]
"""Names the release a request must go to (when that release is routed), or None."""


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
    idle: list[tuple[Incoming, asyncio.StreamWriter]] = field(default_factory=list)

    def close_idle(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class Sample(NamedTuple):
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
        queue = self.samples.get(release)
        if queue is None:
            queue = self.samples[release] = deque()
            self.totals[release] = [0, 0]
        queue.append(Sample(now, latency, error))
        totals = self.totals[release]
        totals[0] += 1
        if error:
            totals[1] += 1
        horizon = now - self.keep
        while queue[0].at < horizon:
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


def release_tag(release: str) -> str:
    """The hash of a release id that the cookie carries (8 hex digits, no name exposed)."""
    return hashlib.blake2s(release.encode(), digest_size=4).hexdigest()


def split_cookie(head: Head) -> tuple[int, str] | None:
    """The (bucket, release tag) of the request's ``tower-split`` cookie, if it has a valid one."""
    for name, value in head.headers:
        if name.lower() != b"cookie" or _COOKIE_KEY not in value:
            continue
        for part in value.split(b";"):
            key, _, found = part.strip().partition(b"=")
            if key != _COOKIE_KEY:
                continue
            bucket, _, tag = found.partition(b".")
            if len(bucket) == 8 and len(tag) == 8:
                try:
                    return int(bucket, 16), tag.decode("ascii")
                except (ValueError, UnicodeDecodeError):
                    return None
    return None


class RoutingTable:
    """Release weights and instances; replaced as a whole, never edited in place."""

    def __init__(self, weights: dict[str, float], targets: list[Target]) -> None:
        self.weights = {release: w for release, w in weights.items() if w > 0}
        self.targets = targets
        self._by_release: dict[str, list[Target]] = {}
        for target in targets:
            self._by_release.setdefault(target.release, []).append(target)
        releases = [r for r in self.weights if self._by_release.get(r)]
        total = sum(self.weights[r] for r in releases)
        self._releases = releases
        self._tags = {release_tag(r): r for r in releases}
        self._tag_of = {r: tag for tag, r in self._tags.items()}
        self._cumulative: list[float] = []
        running = 0.0
        for release in releases:
            running += self.weights[release] / total if total else 0
            self._cumulative.append(running)

    @property
    def releases(self) -> list[str]:
        """The releases that take traffic: a weight above zero and an instance."""
        return list(self._releases)

    def release_at(self, point: float) -> str | None:
        """The release whose share of the split holds ``point`` (in [0, 1))."""
        if not self._releases:
            return None
        index = bisect.bisect_right(self._cumulative, point)
        return self._releases[min(index, len(self._releases) - 1)]

    def route(self, head: Head, pins: Sequence[Pin] = ()) -> tuple[str | None, bytes | None]:
        """The release for a request, and the ``Set-Cookie`` value to answer with (or None)."""
        for pin in pins:
            named = pin(head)
            if named is not None and named in self._tag_of:
                return named, None
        found = split_cookie(head)
        if found is not None:
            bucket, tag = found
            pinned = self._tags.get(tag)
            if pinned is not None:
                return pinned, None
        else:
            bucket = random.getrandbits(32)
        release = self.release_at(bucket / 4294967296.0)
        if release is None:
            return None, None
        if len(self._releases) < 2 and head.get(b"sec-fetch-mode") is None:
            return release, None  # no split, and not a browser: nothing to remember
        cookie = b"%s=%08x.%s; Path=/; HttpOnly; SameSite=Lax" % (
            _COOKIE_KEY,
            bucket,
            self._tag_of[release].encode(),
        )
        return release, cookie

    def choose(self, exclude: set[str], release: str | None = None) -> Target | None:
        """The least busy instance of ``release`` (by weight when None), else of another release."""
        if not self._releases:
            return None
        if release is None:
            release = self.release_at(random.random())
        for name in [release, *self._releases]:
            candidates = [
                t
                for t in self._by_release.get(name or "", [])
                if t.routable and t.id not in exclude
            ]
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                return min(candidates, key=lambda t: t.inflight + random.random())
        for target in self.targets:
            if target.routable and target.id not in exclude and target.release in self.weights:
                return target
        return None


class _Body:
    """A request body read from the client as the upstream takes it, with a bounded replay.

    The first 64 KiB that went out are kept, so a request whose connection
    failed before any answer can be sent again; past that it cannot.
    """

    def __init__(self, incoming: Incoming, head: Head, present: bool) -> None:
        self.incoming = incoming
        self.present = present
        self.chunked = present and head.get(b"content-length") is None
        self.expect = present and (head.get(b"expect") or b"").lower() == b"100-continue"
        self.kept: list[bytes] = []
        self.size = 0
        self.replayable = True
        self.done = not self.present

    async def send(self, writer: asyncio.StreamWriter, client: asyncio.StreamWriter) -> None:
        if not self.present:
            return
        frame = _chunk if self.chunked else bytes
        for kept in self.kept:
            writer.write(frame(kept))
        if not self.done:
            if self.expect:
                self.expect = False
                client.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            while (piece := await self.incoming.body()) is not None:
                if self.replayable:
                    self.size += len(piece)
                    if self.size <= _REPLAY:
                        self.kept.append(piece)
                    else:
                        self.replayable = False
                        self.kept.clear()
                writer.write(frame(piece))
                await writer.drain()
            self.done = True
        if self.chunked:
            writer.write(b"0\r\n\r\n")


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
        pins: Sequence[Pin] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.table = RoutingTable({}, [])
        self.metrics = Metrics()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pins = [*pins, self.deployment_pin]
        self.deployments: dict[bytes, str] = {}
        self.on_error = on_error or (lambda message: None)
        self.server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    def deployment_pin(self, head: Head) -> str | None:
        """The release that answered with the Next.js deployment id this request names."""
        named = head.get(b"x-deployment-id")
        return self.deployments.get(named) if named else None

    def _learn(self, response: Head, release: str) -> None:
        named = response.get(b"x-nextjs-deployment-id")
        if named and self.deployments.get(named) != release:
            if len(self.deployments) >= _MAX_DEPLOYMENTS:
                self.deployments.pop(next(iter(self.deployments)))
            self.deployments[named] = release

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
        """Install a new routing table in one assignment; drop pooled connections of old targets.

        Requests in flight and upgraded (WebSocket) connections keep going to
        where they were sent.
        """
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
        incoming = Incoming(reader, request=True, chunk=_PIECE, max_head=_MAX_HEAD)
        try:
            while True:
                try:
                    head = await incoming.head()
                except MessageError:
                    writer.write(_simple(400, b"bad request"))
                    await writer.drain()
                    return
                if head is None:
                    return
                if head.method == b"CONNECT":
                    writer.write(_simple(405, b"CONNECT is not proxied"))
                    await writer.drain()
                    return
                keep = await self._forward(head, incoming, writer, client_ip)
                if not keep or not head.keep_alive:
                    return
        except (ConnectionError, MessageError, asyncio.CancelledError):
            return
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _forward(
        self, head: Head, incoming: Incoming, client: asyncio.StreamWriter, client_ip: bytes
    ) -> bool:
        table = self.table
        release, cookie = table.route(head, self.pins)
        body = _Body(incoming, head, head.has_body())
        tried: set[str] = set()
        last_error = "no release is routed"
        answered_by = ""
        started = time.monotonic()
        for _attempt in range(4):
            target = table.choose(tried, release)
            if target is None:
                break
            answered_by = target.release
            target.inflight += 1
            try:
                return await self._exchange(target, head, body, client, client_ip, cookie, started)
            except UpstreamFailed as exc:
                last_error = f"{target.id}: {exc}"
                tried.add(target.id)
                if not exc.retryable or not body.replayable:
                    break
            finally:
                target.inflight -= 1
        self.on_error(last_error)
        if answered_by:
            self.metrics.record(answered_by, time.monotonic() - started, True)
        client.write(_simple(502, b"no healthy upstream"))
        await client.drain()
        return body.done and not head.upgrade

    async def _connection(
        self, target: Target, fresh: bool
    ) -> tuple[Incoming, asyncio.StreamWriter, bool]:
        while target.idle and not fresh:
            upstream, writer = target.idle.pop()
            if not writer.is_closing() and not upstream.reader.at_eof():
                return upstream, writer, True
            writer.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port, limit=_MAX_HEAD),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamFailed(f"connect failed: {exc}", retryable=True) from None
        return Incoming(reader, request=False, chunk=_PIECE, max_head=_MAX_HEAD), writer, False

    async def _exchange(
        self,
        target: Target,
        head: Head,
        body: _Body,
        client: asyncio.StreamWriter,
        client_ip: bytes,
        cookie: bytes | None,
        started: float,
    ) -> bool:
        request = _request_head(head, client_ip, body.present)
        head_only = head.method == b"HEAD"
        idempotent = head.method in _IDEMPOTENT
        for fresh in (False, True):
            upstream, writer, pooled = await self._connection(target, fresh)
            try:
                writer.write(request)
                if body.present:
                    await body.send(writer, client)
                if writer.transport.get_write_buffer_size():
                    await writer.drain()
                response = await _within(
                    self.read_timeout, upstream.head(head_only=head_only), writer
                )
                if response is None:
                    raise ConnectionError("closed without an answer")
            except (MessageError, ConnectionError, OSError, TimeoutError) as exc:
                writer.close()
                if isinstance(exc, MessageError) and not body.done:
                    raise  # the client's body was not valid: nothing to answer
                if pooled and idempotent and body.replayable and not isinstance(exc, TimeoutError):
                    continue
                raise UpstreamFailed(
                    f"no response ({type(exc).__name__})",
                    retryable=idempotent and body.replayable,
                ) from None
            break
        else:  # pragma: no cover - the loop always breaks or raises
            raise UpstreamFailed("no response", retryable=False)
        status = response.status
        self._learn(response, target.release)
        if head.upgrade and status == 101:
            client.write(_response_head(response, target.release, cookie, upgrade=True))
            if upstream.leftover:
                client.write(upstream.leftover)
            self.metrics.record(target.release, time.monotonic() - started, False)
            await _tunnel(incoming=body.incoming, client=client, upstream=upstream, writer=writer)
            return False
        no_body = head_only or status in (204, 304) or 100 <= status < 200
        length = response.get(b"content-length")
        chunked = not no_body and length is None and response.has_body()
        until_close = not no_body and length is None and not chunked
        keep_alive = head.keep_alive and not until_close and not head.upgrade
        out = _response_head(
            response, target.release, cookie, chunked=chunked, keep_alive=keep_alive
        )
        ended = True
        if not no_body:  # what already arrived goes out with the head, in one write
            pieces, ended = upstream.ready()
            for piece in pieces:
                out += _chunk(piece) if chunked else piece
            if ended and chunked:
                out += b"0\r\n\r\n"
        client.write(out)
        try:
            if not ended:
                while (
                    more := await _within(self.read_timeout, upstream.body(), writer)
                ) is not None:
                    client.write(_chunk(more) if chunked else more)
                    await client.drain()
                if chunked:
                    client.write(b"0\r\n\r\n")
            if client.transport.get_write_buffer_size() or client.transport.is_closing():
                await client.drain()  # skipped (a coroutine less) when all went out at once
        except (MessageError, ConnectionError, TimeoutError):
            writer.close()
            self.metrics.record(target.release, time.monotonic() - started, True)
            return False
        self.metrics.record(target.release, time.monotonic() - started, status >= 500)
        if response.keep_alive and not until_close and target.routable and len(target.idle) < 64:
            target.idle.append((upstream, writer))
        else:
            writer.close()
        return keep_alive


async def _within(seconds: float, step: Awaitable[_T], writer: asyncio.StreamWriter) -> _T:
    """``step``, or TimeoutError after ``seconds`` with ``writer``'s connection aborted.

    One timer per wait, cheaper than a timeout scope on the hot path.
    """
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        writer.transport.abort()

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        return await step
    except (MessageError, ConnectionError):
        if expired:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()


async def _tunnel(
    *,
    incoming: Incoming,
    client: asyncio.StreamWriter,
    upstream: Incoming,
    writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes, then close both."""

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(_PIECE):
                sink.write(data)
                await sink.drain()

    if incoming.leftover:
        writer.write(incoming.leftover)
    tasks = [
        asyncio.ensure_future(pipe(incoming.reader, writer)),
        asyncio.ensure_future(pipe(upstream.reader, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        writer.close()
        client.close()


def _connection_tokens(head: Head) -> set[bytes]:
    value = head.get(b"connection")
    if not value:
        return set()
    return {token.strip().lower() for token in value.split(b",")}


def _request_head(head: Head, client_ip: bytes, has_body: bool) -> bytes:
    out = bytearray(head.method + b" " + head.target + b" HTTP/1.1\r\n")
    declared = _connection_tokens(head)
    forwarded_for = None
    for name, value in head.headers:
        lower = name.lower()
        if lower in _HOP or lower in declared or lower in (b"content-length", b"expect"):
            continue
        if lower == b"x-forwarded-for":
            forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
            continue
        out += name + b": " + value + b"\r\n"
    chain = forwarded_for + b", " + client_ip if forwarded_for else client_ip
    out += b"x-forwarded-for: " + chain + b"\r\n"
    length = head.get(b"content-length")
    if length is not None:
        out += b"content-length: " + length.strip() + b"\r\n"
    elif has_body:
        out += b"transfer-encoding: chunked\r\n"
    elif head.method in (b"POST", b"PUT", b"PATCH"):
        out += b"content-length: 0\r\n"
    if head.upgrade:
        out += b"connection: upgrade\r\nupgrade: " + (head.get(b"upgrade") or b"") + b"\r\n\r\n"
    else:
        out += b"connection: keep-alive\r\n\r\n"
    return bytes(out)


def _response_head(
    response: Head,
    release: str,
    cookie: bytes | None,
    *,
    chunked: bool = False,
    keep_alive: bool = True,
    upgrade: bool = False,
) -> bytearray:
    out = bytearray(b"HTTP/1.1 %d %s\r\n" % (response.status, response.reason))
    declared = _connection_tokens(response)
    for name, value in response.headers:
        lower = name.lower()
        if (lower in _HOP or lower in declared) and not (upgrade and lower == b"upgrade"):
            continue
        out += name + b": " + value + b"\r\n"
    out += b"x-tower-release: " + release.encode() + b"\r\n"
    if cookie is not None:
        out += b"set-cookie: " + cookie + b"\r\n"
    if upgrade:
        out += b"connection: upgrade\r\n\r\n"
        return out
    if chunked:
        out += b"transfer-encoding: chunked\r\n"
    out += b"connection: keep-alive\r\n\r\n" if keep_alive else b"connection: close\r\n\r\n"
    return out


def _chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


def _simple(status: int, text: bytes) -> bytes:
    reason = {400: b"Bad Request", 405: b"Method Not Allowed", 502: b"Bad Gateway"}.get(
        status, b"Error"
    )
    return b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        reason,
        len(text),
        text,
    )
