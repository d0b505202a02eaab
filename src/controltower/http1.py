"""HTTP/1.x message parsing with httptools (llhttp), shared by every HTTP/1 peer tower runs.

The proxy reads requests from clients and responses from apps with it, the
load generator's client and the monitors' plain-HTTP client read responses with
it. Nothing here parses HTTP by hand: framing (``Content-Length``, chunked
coding, ``Transfer-Encoding:chunked`` with or without a space, bodies until
close, 1xx and ``Upgrade``) is llhttp's.

Two shapes over one event collector:

- ``ResponseParser``: push bytes, get whole responses (the clients want bodies);
- ``Incoming``: pull a message head, then its body piece by piece, from an
  ``asyncio.StreamReader`` (the proxy streams bodies, it never holds one whole).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import httptools

__all__ = [
    "Complete",
    "Head",
    "Incoming",
    "MessageError",
    "ResponseParser",
    "header",
]

Headers = list[tuple[bytes, bytes]]


class MessageError(Exception):
    """The bytes are not a valid HTTP/1.x message."""


@dataclass
class Head:
    """A request or response head: what came before the body."""

    method: bytes = b""
    target: bytes = b""
    status: int = 0
    reason: bytes = b""
    version: str = "1.1"
    headers: Headers = field(default_factory=list)
    keep_alive: bool = True
    upgrade: bool = False

    _index: dict[bytes, bytes] | None = field(default=None, repr=False, compare=False)

    def get(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        index = self._index
        if index is None:
            index = {}
            for key, value in self.headers:
                index.setdefault(key.lower(), value)
            self._index = index
        return index.get(name)

    def has_body(self) -> bool:
        """Whether the sender announced a body (a length above zero or chunked coding)."""
        length = self.get(b"content-length")
        if length is not None:
            return length.strip() not in (b"0", b"")
        return b"chunked" in (self.get(b"transfer-encoding") or b"").lower()


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of header ``name`` (given in lower case) in ``headers``, or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


_HEAD, _BODY, _END = 0, 1, 2


class _Collector:
    """httptools callbacks turned into a queue of (kind, value) events."""

    def __init__(self, request: bool) -> None:
        self.events: deque[tuple[int, object]] = deque()
        self.request = request
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser
        if request:
            self.parser = httptools.HttpRequestParser(self)
        else:
            self.parser = httptools.HttpResponseParser(self)
        self.head = Head()
        self.in_message = False

    def on_message_begin(self) -> None:
        self.head = Head()
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self.head.target += url

    def on_status(self, reason: bytes) -> None:
        self.head.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head.headers.append((name, value))

    def on_headers_complete(self) -> None:
        head, parser = self.head, self.parser
        head.version = parser.get_http_version()
        head.keep_alive = parser.should_keep_alive()
        head.upgrade = parser.should_upgrade()
        if self.request:
            head.method = parser.get_method()  # type: ignore[union-attr]
        else:
            head.status = parser.get_status_code()  # type: ignore[union-attr]
        self.events.append((_HEAD, head))

    def on_body(self, body: bytes) -> None:
        if body:
            self.events.append((_BODY, body))

    def on_message_complete(self) -> None:
        self.in_message = False
        self.events.append((_END, None))

    def feed(self, data: bytes) -> bytes:
        """Parse ``data``; returns the bytes after an upgrade (another protocol's), else b""."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            return data[exc.args[0] :] if exc.args else b""
        except httptools.HttpParserError as exc:
            raise MessageError(str(exc) or type(exc).__name__) from None
        return b""


@dataclass
class Complete:
    """A whole response: its head and its body."""

    head: Head
    body: bytes

    @property
    def status(self) -> int:
        return self.head.status


class ResponseParser:
    """Responses from a byte stream, one at a time (a client sends one request at a time).

    ``expect_head_only()`` before the response to a HEAD request: it ends with
    its head whatever its ``Content-Length`` says. ``eof()`` completes a
    response whose body runs until the connection closes.
    """

    def __init__(self) -> None:
        self._collector = _Collector(request=False)
        self._head: Head | None = None
        self._body: list[bytes] = []
        self._head_only = False
        self.upgraded = b""

    def expect_head_only(self, head_only: bool = True) -> None:
        self._head_only = head_only

    def feed(self, data: bytes) -> Complete | None:
        """Parse ``data``; the response it completes, if any. Raises MessageError."""
        collector = self._collector
        self.upgraded = collector.feed(data)
        events = collector.events
        while events:
            kind, value = events.popleft()
            if kind == _HEAD:
                head = value
                assert isinstance(head, Head)
                if 100 <= head.status < 200 and head.status != 101:
                    continue  # interim response: the real one follows
                self._head = head
                if self._head_only:
                    self._collector = _Collector(request=False)
                    events.clear()
                    return self._done()
            elif kind == _BODY:
                assert isinstance(value, bytes)
                self._body.append(value)
            elif self._head is not None:
                return self._done()
        return None

    def eof(self) -> Complete | None:
        """The connection closed: the response whose body ran until now, if one had begun."""
        if self._head is None or not self._collector.in_message:
            return None
        if (
            self._head.get(b"content-length") is not None
            or b"chunked" in (self._head.get(b"transfer-encoding") or b"").lower()
        ):
            return None  # the announced body did not arrive whole
        self._head.keep_alive = False
        return self._done()

    def _done(self) -> Complete:
        head = self._head
        assert head is not None
        body = b"".join(self._body)
        self._head, self._body = None, []
        return Complete(head, body)


class Incoming:
    """Messages read from ``reader``, head first, then the body piece by piece.

    Reads from the socket only when asked for more, so a slow consumer holds
    back the sender (TCP flow control) instead of filling memory.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        request: bool,
        chunk: int = 65536,
        max_head: int = 64 * 1024,
    ) -> None:
        self.reader = reader
        self.chunk = chunk
        self.max_head = max_head
        self._read = 0
        self._collector = _Collector(request=request)
        self._request = request
        self.eof = False
        self.leftover = b""  # bytes after an upgrade: the other protocol's
        self._in_body = False

    async def _more(self) -> bool:
        if self.eof or self.leftover:
            return False
        data = await self.reader.read(self.chunk)
        if not data:
            self.eof = True
            return False
        self._read = len(data)
        self.leftover = self._collector.feed(data)
        return True

    async def head(self, *, head_only: bool = False) -> Head | None:
        """The next message's head; None when the peer closed before one began.

        ``head_only`` (a response to HEAD): the message ends with its head.
        Interim (1xx other than 101) responses are skipped. Raises MessageError
        for bytes that are not HTTP/1.x or a head longer than ``max_head``.
        """
        events = self._collector.events
        waited = 0
        while True:
            while events:
                kind, value = events.popleft()
                if kind != _HEAD:
                    continue
                assert isinstance(value, Head)
                if not self._request and 100 <= value.status < 200 and value.status != 101:
                    continue
                if head_only:
                    self._collector = _Collector(request=False)
                self._in_body = not head_only
                return value
            if waited > self.max_head:
                raise MessageError(f"the message head is longer than {self.max_head} bytes")
            if not await self._more():
                if self._collector.in_message:
                    raise MessageError("the connection closed in the middle of a message head")
                return None
            waited += self._read

    async def body(self) -> bytes | None:
        """The next piece of the current message's body; None once it is complete.

        Raises MessageError when the connection closes before the body is whole.
        """
        if not self._in_body:
            return None
        events = self._collector.events
        while True:
            if events:
                kind, value = events.popleft()
                if kind == _BODY:
                    assert isinstance(value, bytes)
                    return value
                self._in_body = False
                return None
            if not await self._more():
                if self.leftover:
                    self._in_body = False
                    return None
                self._in_body = False
                head = self._collector.head
                if self._request or head.get(b"content-length") is not None:
                    raise MessageError("the connection closed before the body was whole")
                if b"chunked" in (head.get(b"transfer-encoding") or b"").lower():
                    raise MessageError("the connection closed before the body was whole")
                return None  # a response body that runs until close

    def ready(self) -> tuple[list[bytes], bool]:
        """The body pieces already parsed, without waiting, and whether the body is complete."""
        pieces: list[bytes] = []
        events = self._collector.events
        while self._in_body and events:
            kind, value = events[0]
            if kind == _BODY:
                events.popleft()
                assert isinstance(value, bytes)
                pieces.append(value)
            elif kind == _END:
                events.popleft()
                self._in_body = False
            else:
                break
        return pieces, not self._in_body

    async def drain_body(self) -> None:
        """Read and drop the rest of the current body."""
        while await self.body() is not None:
            pass
