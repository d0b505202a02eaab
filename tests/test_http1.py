"""The shared HTTP/1 parser (httptools): framing as servers and clients really send it."""

from __future__ import annotations

import asyncio

import pytest

from controltower.http1 import Head, Incoming, MessageError, ResponseParser


def whole(data: bytes, *, head_only: bool = False) -> list[tuple[int, bytes]]:
    """Every response in ``data``, fed one byte at a time."""
    parser = ResponseParser()
    parser.expect_head_only(head_only)
    found = []
    for index in range(len(data)):
        complete = parser.feed(data[index : index + 1])
        if complete is not None:
            found.append((complete.status, complete.body))
    return found


class TestResponseParser:
    def test_framings_byte_by_byte(self) -> None:
        """Length, chunked (with extensions and trailers) and no-body answers, split anywhere."""
        data = (
            b"HTTP/1.1 200 OK\r\nContent-Length:3\r\n\r\nabc"
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding:chunked\r\n\r\n"
            b"2;ext=1\r\nhe\r\n3\r\nllo\r\n0\r\nX-Trailer: 1\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\n\r\n"
        )
        assert whole(data) == [(200, b"abc"), (201, b"hello"), (204, b"")]

    def test_interim_answers_are_skipped(self) -> None:
        """A 100 Continue before the real answer is not the answer."""
        data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        assert whole(data) == [(200, b"ok")]

    def test_head_answers_end_with_their_head(self) -> None:
        """The answer to HEAD announces a length but has no body."""
        assert whole(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", head_only=True) == [
            (200, b"")
        ]

    def test_body_until_close(self) -> None:
        """Without length or chunking the body ends with the connection, and not before."""
        parser = ResponseParser()
        assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall ") is None
        assert parser.feed(b"of it") is None
        complete = parser.eof()
        assert complete is not None and complete.body == b"all of it"
        assert not complete.head.keep_alive

    def test_a_cut_body_is_not_a_response(self) -> None:
        """A connection closed before the announced length arrived completes nothing."""
        parser = ResponseParser()
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        assert parser.eof() is None

    def test_garbage_is_an_error(self) -> None:
        """Bytes that are not an HTTP/1.x answer raise MessageError."""
        with pytest.raises(MessageError):
            ResponseParser().feed(b"SSH-2.0-OpenSSH\r\n\r\n")


class TestIncoming:
    async def test_head_then_body_pieces_then_next_message(self) -> None:
        """Pipelined requests come out one at a time, body pieces in order."""
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /b HTTP/1.0\r\nCookie: k=v\r\n\r\n"
        )
        reader.feed_eof()
        incoming = Incoming(reader, request=True)
        first = await incoming.head()
        assert first is not None and (first.method, first.target) == (b"POST", b"/a")
        assert first.has_body() and first.keep_alive
        pieces = []
        while (piece := await incoming.body()) is not None:
            pieces.append(piece)
        assert b"".join(pieces) == b"abcde"
        second = await incoming.head()
        assert second is not None and second.target == b"/b" and not second.keep_alive
        assert second.get(b"cookie") == b"k=v" and not second.has_body()
        assert await incoming.body() is None
        assert await incoming.head() is None

    async def test_upgrade_keeps_the_other_protocols_bytes(self) -> None:
        """After an Upgrade head, what follows is handed over untouched."""
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            b"\x81\x02hi"
        )
        incoming = Incoming(reader, request=True)
        head = await incoming.head()
        assert head is not None and head.upgrade
        assert await incoming.body() is None
        assert incoming.leftover == b"\x81\x02hi"

    async def test_long_head_is_refused(self) -> None:
        """A head longer than max_head raises instead of growing without bound."""
        reader = asyncio.StreamReader()
        reader.feed_data(b"GET / HTTP/1.1\r\n" + b"x: y\r\n" * 5000)
        incoming = Incoming(reader, request=True, chunk=1024, max_head=8 * 1024)
        with pytest.raises(MessageError):
            await incoming.head()

    def test_header_lookup_is_case_insensitive_first_wins(self) -> None:
        """``get`` takes a lower-case name and returns the first value sent."""
        head = Head(headers=[(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2")])
        assert head.get(b"set-cookie") == b"a=1" and head.get(b"missing") is None
