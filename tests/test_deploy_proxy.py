"""tower's reverse proxy, in process, in front of real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect as websocket_connect

from controltower.deploy.local.proxy import COOKIE, Metrics, Proxy, RoutingTable, Target
from controltower.http1 import Head, Incoming, ResponseParser
from tests.conftest import free_port, wait_for_port


class Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class Upstream:
    """An HTTP/1.1 server that says who it is; ``/slow?s=``, ``/status?code=``, ``/chunked``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.seen: list[dict[str, str]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _answer(self, body: bytes = b"") -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                upstream.seen.append({k.lower(): v for k, v in self.headers.items()})
                if parts.path == "/slow":
                    time.sleep(float(query["s"][0]))
                status = int(query.get("code", ["200"])[0])
                if parts.path == "/chunked":
                    self.send_response(200)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for piece in (b"one,", b"two,", upstream.name.encode()):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                out = body or upstream.name.encode()
                self.send_response(status)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            def do_GET(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self._answer(b"got:" + self.rfile.read(length))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def target(self, release: str) -> Target:
        return Target(self.name, release, "127.0.0.1", self.port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstreams() -> Iterator[dict[str, Upstream]]:
    made = {name: Upstream(name) for name in ("a1", "a2", "b1")}
    yield made
    for upstream in made.values():
        upstream.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    server = Proxy("127.0.0.1", 0)
    await server.start()
    yield server
    await server.stop()


def base(proxy: Proxy) -> str:
    return f"http://127.0.0.1:{proxy.port}"


class TestRouting:
    async def test_weighted_split(self, proxy: Proxy, upstreams: dict[str, Upstream]) -> None:
        """A 90/10 split sends about a tenth of cookie-less requests to the canary release."""
        proxy.update(
            {"stable": 0.9, "canary": 0.1},
            [upstreams["a1"].target("stable"), upstreams["b1"].target("canary")],
        )
        answers: Counter[str] = Counter()
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            for _ in range(600):
                client.cookies.clear()
                answers[(await client.get("/")).headers["x-tower-release"]] += 1
        assert set(answers) == {"stable", "canary"}
        assert 0.05 <= answers["canary"] / 600 <= 0.16

    async def test_instances_of_a_release_share_its_traffic(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """Requests of one release spread over its instances."""
        proxy.update({"a": 1.0}, [upstreams["a1"].target("a"), upstreams["a2"].target("a")])
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            bodies = Counter([(await client.get("/")).text for _ in range(100)])
        assert bodies["a1"] > 10 and bodies["a2"] > 10

    async def test_switch_is_atomic_under_concurrency(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """Flipping the table while requests fly loses none; afterwards only the new release answers."""
        blue, green = upstreams["a1"].target("blue"), upstreams["b1"].target("green")
        proxy.update({"blue": 1.0}, [blue])
        async with httpx.AsyncClient(base_url=base(proxy)) as client:

            async def one() -> httpx.Response:
                return await client.get("/")

            first = [asyncio.create_task(one()) for _ in range(50)]
            await asyncio.sleep(0.01)
            proxy.update({"green": 1.0}, [green])
            second = [asyncio.create_task(one()) for _ in range(50)]
            answers = await asyncio.gather(*first, *second)
            after = [(await client.get("/")).headers["x-tower-release"] for _ in range(20)]
        assert [r.status_code for r in answers if r.status_code != 200] == []
        assert set(after) == {"green"}

    async def test_no_route_is_502(self, proxy: Proxy) -> None:
        """With nothing routed the proxy answers 502 at once."""
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            response = await client.get("/")
        assert response.status_code == 502
        assert response.text == "no healthy upstream"

    async def test_refused_connection_is_retried_elsewhere(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """An instance that went away costs no request: it is retried on another instance."""
        dead = Target("dead", "a", "127.0.0.1", free_port())
        proxy.update({"a": 1.0}, [dead, upstreams["a1"].target("a")])
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            statuses = {(await client.get("/")).status_code for _ in range(30)}
        assert statuses == {200}


class TestForwarding:
    async def test_post_body_and_headers(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """The body reaches the app with its length; x-forwarded-for names the client."""
        proxy.update({"a": 1.0}, [upstreams["a1"].target("a")])
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            response = await client.post(
                "/", content=b"hello", headers={"x-forwarded-for": "10.0.0.9"}
            )
        assert response.text == "got:hello"
        assert response.headers["x-tower-release"] == "a"
        seen = upstreams["a1"].seen[-1]
        assert seen["content-length"] == "5"
        assert seen["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"

    async def test_chunked_and_head(self, proxy: Proxy, upstreams: dict[str, Upstream]) -> None:
        """Chunked bodies pass through whole; HEAD gets headers only."""
        proxy.update({"a": 1.0}, [upstreams["a1"].target("a")])
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            chunked = await client.get("/chunked")
            head = await client.head("/")
        assert chunked.text == "one,two,a1"
        assert head.status_code == 200 and head.content == b""


class TestDraining:
    async def test_in_flight_request_finishes_after_removal(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """Removing an instance stops new requests to it; one already in flight completes."""
        old, new = upstreams["a1"].target("old"), upstreams["b1"].target("new")
        proxy.update({"old": 1.0}, [old])
        async with httpx.AsyncClient(base_url=base(proxy), timeout=10) as client:
            slow = asyncio.create_task(client.get("/slow?s=0.8"))
            deadline = time.monotonic() + 5
            while old.inflight == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert old.inflight == 1
            proxy.update({"new": 1.0}, [new])
            quick = await client.get("/")
            assert old.inflight == 1, "the slow request is still being served"
            finished = await slow
        assert quick.headers["x-tower-release"] == "new"
        assert finished.status_code == 200 and finished.text == "a1"
        assert old.inflight == 0


class TestMetrics:
    async def test_per_release_counts_errors_and_latency(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """The router counts each release's answers, its 5xx and its latency quantiles."""
        proxy.update(
            {"a": 0.5, "b": 0.5}, [upstreams["a1"].target("a"), upstreams["b1"].target("b")]
        )
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            for _ in range(20):
                client.cookies.clear()
                await client.get("/status?code=500")
            proxy.update({"a": 1.0}, [upstreams["a1"].target("a")])
            for _ in range(10):
                await client.get("/slow?s=0.05")
        a, b = proxy.metrics.window("a", 60), proxy.metrics.window("b", 60)
        assert a["requests"] + b["requests"] == 30
        assert a["errors"] + b["errors"] == 20
        assert b["error_rate"] == 1.0
        assert a["p99"] >= 0.05
        assert 0 < a["p50"] <= a["p95"] <= a["p99"]

    def test_window_forgets_old_samples(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Samples older than the window are left out; the totals keep them."""
        now = [1000.0]
        monkeypatch.setattr("controltower.deploy.local.proxy.time.monotonic", lambda: now[0])
        metrics = Metrics()
        metrics.record("r", 0.01, True)
        now[0] += 30
        metrics.record("r", 0.02, False)
        recent = metrics.window("r", 10)
        assert (recent["requests"], recent["errors"], recent["total_requests"]) == (1, 0, 2)
        assert metrics.window("unknown", 10)["requests"] == 0


class TestRoutingTable:
    def test_weights_of_releases_without_instances_are_ignored(self) -> None:
        """A release with no routable instance gets nothing; the rest share by their weights."""
        a = Target("a1", "a", "127.0.0.1", 1)
        table = RoutingTable({"a": 0.2, "ghost": 0.8}, [a])
        assert {table.choose(set()).id for _ in range(50)} == {"a1"}  # type: ignore[union-attr]

    def test_excluded_targets_fall_back_to_other_releases(self) -> None:
        """When every instance of the chosen release failed, another routed release answers."""
        a, b = Target("a1", "a", "h", 1), Target("b1", "b", "h", 2)
        table = RoutingTable({"a": 0.99, "b": 0.01}, [a, b])
        assert table.choose({"a1"}) is b
        assert table.choose({"a1", "b1"}) is None


NAVIGATE = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}  # as browsers send


def release_of(response: httpx.Response) -> str:
    return response.headers["x-tower-release"]


class TestSticky:
    async def test_a_client_keeps_its_release_through_the_canary(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """A client that loaded the stable release before the canary stays on it at every step."""
        stable, canary = upstreams["a1"].target("stable"), upstreams["b1"].target("canary")
        proxy.update({"stable": 1.0}, [stable])
        seen: list[str] = []
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            first = await client.get("/", headers=NAVIGATE)
            assert COOKIE in first.cookies
            for weight in (0.1, 0.5, 0.9):
                proxy.update({"canary": weight, "stable": 1 - weight}, [stable, canary])
                seen += [release_of(await client.get("/")) for _ in range(30)]
        assert set(seen) == {"stable"}

    async def test_new_clients_split_by_weight_and_each_sticks(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """Clients arriving during a 50/50 split land on both releases, each on one only."""
        proxy.update(
            {"canary": 0.5, "stable": 0.5},
            [upstreams["a1"].target("stable"), upstreams["b1"].target("canary")],
        )
        per_client: list[set[str]] = []
        for _ in range(40):
            async with httpx.AsyncClient(base_url=base(proxy)) as client:
                per_client.append({release_of(await client.get("/")) for _ in range(5)})
        assert all(len(releases) == 1 for releases in per_client)
        landed = Counter(next(iter(releases)) for releases in per_client)
        assert landed["canary"] >= 8 and landed["stable"] >= 8

    async def test_a_client_moves_when_its_release_leaves(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """Once its release takes no traffic the client gets the new one, with a new cookie
        that keeps its bucket."""
        stable, canary = upstreams["a1"].target("stable"), upstreams["b1"].target("canary")
        proxy.update({"stable": 1.0}, [stable])
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            before = (await client.get("/", headers=NAVIGATE)).cookies[COOKIE]
            proxy.update({"canary": 1.0}, [canary])
            moved = await client.get("/", headers=NAVIGATE)
            again = await client.get("/", headers=NAVIGATE)
        assert release_of(moved) == "canary" and release_of(again) == "canary"
        after = moved.cookies[COOKIE]
        assert after.split(".")[0] == before.split(".")[0] and after != before
        assert COOKIE not in again.cookies, "a client already on its release is not told again"

    async def test_a_pin_names_the_release(self, upstreams: dict[str, Upstream]) -> None:
        """A pin (such as a Next.js deployment id) wins over the cookie and the weights."""

        def deployment(head: Head) -> str | None:
            value = head.get(b"x-deployment-id")
            return value.decode() if value else None

        server = Proxy("127.0.0.1", 0, pins=[deployment])
        await server.start()
        try:
            server.update(
                {"stable": 0.99, "canary": 0.01},
                [upstreams["a1"].target("stable"), upstreams["b1"].target("canary")],
            )
            async with httpx.AsyncClient(base_url=base(server)) as client:
                pinned = {
                    release_of(await client.get("/", headers={"x-deployment-id": "canary"}))
                    for _ in range(20)
                }
                unknown = await client.get("/", headers={"x-deployment-id": "gone"})
        finally:
            await server.stop()
        assert pinned == {"canary"}
        assert unknown.status_code == 200

    async def test_no_cookie_outside_a_split_except_for_browsers(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """With one release, a scanner or API client gets no Set-Cookie; a browser does."""
        proxy.update({"stable": 1.0}, [upstreams["a1"].target("stable")])
        async with httpx.AsyncClient(base_url=base(proxy)) as client:
            plain = await client.get("/")
            client.cookies.clear()
            browser = await client.get("/", headers=NAVIGATE)
        assert "set-cookie" not in plain.headers
        assert browser.headers["set-cookie"].startswith(f"{COOKIE}=")

    def test_a_malformed_cookie_is_replaced(self) -> None:
        """A cookie that is not <bucket>.<tag> counts as none: the answer sets a valid one."""
        table = RoutingTable(
            {"a": 0.5, "b": 0.5}, [Target("a1", "a", "h", 1), Target("b1", "b", "h", 2)]
        )
        for value in (b"tower-split=zz", b"tower-split=12345678.short", b"other=1"):
            release, cookie = table.route(Head(headers=[(b"Cookie", value)]))
            assert release in ("a", "b") and cookie is not None
            assert cookie.startswith(b"tower-split=") and b"; Path=/; HttpOnly" in cookie


class TestStreaming:
    @pytest.mark.parametrize("framing", ["chunked", "content-length"])
    async def test_the_app_reads_the_body_while_the_client_still_sends(
        self, proxy: Proxy, framing: str
    ) -> None:
        """The first piece of a 4 MiB upload reaches the app before the client sends the rest;
        a proxy that held the whole body would wait here until the timeout."""
        first_seen = asyncio.Event()
        received = bytearray()

        async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            incoming = Incoming(reader, request=True)
            await incoming.head()
            while (piece := await incoming.body()) is not None:
                received.extend(piece)
                first_seen.set()
            answer = b"%d" % len(received)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(app, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy.update({"a": 1.0}, [Target("app", "a", "127.0.0.1", port)])
        size = 1000 + 64 * 65536

        async def pieces() -> AsyncIterator[bytes]:
            yield b"x" * 1000
            await asyncio.wait_for(first_seen.wait(), 10)
            for _ in range(64):
                yield b"y" * 65536

        headers = {"content-length": str(size)} if framing == "content-length" else {}
        try:
            async with httpx.AsyncClient(base_url=base(proxy), timeout=20) as client:
                response = await client.post("/upload", content=pieces(), headers=headers)
        finally:
            server.close()
        assert response.status_code == 200 and response.text == str(size)
        assert bytes(received[:1000]) == b"x" * 1000 and len(received) == size

    async def test_the_client_reads_the_answer_while_the_app_still_writes(
        self, proxy: Proxy
    ) -> None:
        """The first chunk of an answer reaches the client before the app writes the last."""
        client_got_first = asyncio.Event()

        async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            incoming = Incoming(reader, request=True)
            await incoming.head()
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            await asyncio.wait_for(client_got_first.wait(), 10)
            writer.write(b"4\r\nlast\r\n0\r\n\r\n")
            await writer.drain()
            await reader.read()

        server = await asyncio.start_server(app, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy.update({"a": 1.0}, [Target("app", "a", "127.0.0.1", port)])
        got = bytearray()
        try:
            async with (
                httpx.AsyncClient(base_url=base(proxy), timeout=20) as client,
                client.stream("GET", "/events") as response,
            ):
                async for piece in response.aiter_bytes():
                    got.extend(piece)
                    client_got_first.set()
        finally:
            server.close()
        assert bytes(got) == b"firstlast"

    async def test_expect_continue_is_answered(
        self, proxy: Proxy, upstreams: dict[str, Upstream]
    ) -> None:
        """A client that waits for 100 Continue gets it, then its body reaches the app."""
        proxy.update({"a": 1.0}, [upstreams["a1"].target("a")])
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(b"hello")
        await writer.drain()
        parser, complete = ResponseParser(), None
        while complete is None:
            complete = parser.feed(await asyncio.wait_for(reader.read(65536), 10))
        writer.close()
        assert interim.startswith(b"HTTP/1.1 100 ")
        assert complete.status == 200 and complete.body == b"got:hello"

    async def test_bad_requests_are_refused(self, proxy: Proxy) -> None:
        """Bytes that are not HTTP, or a head over 64 KiB, get 400 and a closed connection."""
        for payload in (b"NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nx: " + b"a" * 70000):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(payload)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 400 ")


class EchoApp:
    """A real ASGI app under uvicorn: ``/`` names it, ``/ws`` echoes text prefixed with its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()

        async def index(request: Request) -> PlainTextResponse:
            return PlainTextResponse(name)

        async def echo(websocket: WebSocket) -> None:
            await websocket.accept()
            async for text in websocket.iter_text():
                await websocket.send_text(f"{name}:{text}")

        app = Starlette(routes=[Route("/", index), WebSocketRoute("/ws", echo)])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            ws="websockets-sansio",
            log_level="warning",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for_port(self.port, 20)

    def target(self) -> Target:
        return Target(self.name, self.name, "127.0.0.1", self.port)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class TestUpgrade:
    async def test_websocket_echo_survives_a_switch(self, proxy: Proxy) -> None:
        """A WebSocket opened on blue keeps echoing from blue after every other request moved
        to green."""
        blue, green = EchoApp("blue"), EchoApp("green")
        try:
            proxy.update({"blue": 1.0}, [blue.target()])
            async with websocket_connect(f"ws://127.0.0.1:{proxy.port}/ws") as socket:
                assert socket.response is not None
                assert socket.response.headers["x-tower-release"] == "blue"
                await socket.send("before")
                assert await socket.recv() == "blue:before"
                proxy.update({"green": 1.0}, [green.target()])
                async with httpx.AsyncClient(base_url=base(proxy)) as client:
                    others = {(await client.get("/")).text for _ in range(10)}
                for number in range(5):
                    await socket.send(f"after {number}")
                    assert await socket.recv() == f"blue:after {number}"
            assert others == {"green"}
            assert blue.target().inflight == 0
        finally:
            blue.close()
            green.close()
