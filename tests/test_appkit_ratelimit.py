"""appkit RateLimit: a token bucket per client, 429 with Retry-After, IETF RateLimit headers."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from controltower.appkit import (
    MemoryBackend,
    PostgresBackend,
    RateLimit,
    RateLimitWSGI,
    RedisBackend,
)
from controltower.appkit._ratelimit import Limiter
from controltower.testing import FakeClock
from tests.appkit_support import redis_server, serve_asgi, serve_wsgi

LIMIT = 20
# An hour-long window: the bucket refills 0.3 tokens in a minute, so a slow burst on a busy
# machine still counts exactly LIMIT served.
WINDOW = 3600


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def hello_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def burst(url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=10)) as client:
        return list(await asyncio.gather(*(client.get(url) for _ in range(count))))


def judge(responses: list[httpx.Response]) -> None:
    """Exactly the limit is served; every excess request is 429 with Retry-After."""
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(ok) == LIMIT and len(limited) == len(responses) - LIMIT
    for r in limited:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json() == {"error": "too many requests"}
    for r in responses:
        assert r.headers["ratelimit-policy"] == f'"default";q={LIMIT};w={WINDOW}'
        assert re.fullmatch(r'"default";r=\d+;t=\d+', r.headers["ratelimit"])
    remaining = sorted(int(r.headers["ratelimit"].split("r=")[1].split(";")[0]) for r in ok)
    assert remaining == list(range(LIMIT))


class TestUnderLoad:
    def test_memory_backend_at_twice_the_limit(self) -> None:
        """40 concurrent requests against a 20-per-hour limit on a real uvicorn: exactly 20
        are served, 20 get 429 with Retry-After, none within the limit is refused."""
        app = RateLimit(hello, limit=LIMIT, window=WINDOW)
        with serve_asgi(app) as url:
            judge(asyncio.run(burst(url + "/", 2 * LIMIT)))

    @pytest.mark.postgres
    def test_postgres_backend_shared_by_two_apps(self, postgres_url: str) -> None:
        """Two servers over one PostgreSQL table share one bucket: 40 requests spread over
        both are served 20 times in all."""
        first = RateLimit(hello, limit=LIMIT, window=WINDOW, backend=PostgresBackend(postgres_url))
        second = RateLimit(hello, limit=LIMIT, window=WINDOW, backend=PostgresBackend(postgres_url))
        with serve_asgi(first) as one, serve_asgi(second) as two:

            async def both() -> list[httpx.Response]:
                a, b = await asyncio.gather(burst(one + "/", LIMIT), burst(two + "/", LIMIT))
                return a + b

            judge(asyncio.run(both()))

    def test_redis_backend_shared_by_two_apps(self, tmp_path: Path) -> None:
        """Two servers over one real Redis share one bucket: 20 of 40 requests are served."""
        with redis_server(tmp_path) as redis_url:
            first = RateLimit(hello, limit=LIMIT, window=WINDOW, backend=RedisBackend(redis_url))
            second = RateLimit(hello, limit=LIMIT, window=WINDOW, backend=RedisBackend(redis_url))
            with serve_asgi(first) as one, serve_asgi(second) as two:

                async def both() -> list[httpx.Response]:
                    a, b = await asyncio.gather(burst(one + "/", LIMIT), burst(two + "/", LIMIT))
                    return a + b

                judge(asyncio.run(both()))

    def test_wsgi_at_twice_the_limit(self) -> None:
        """The WSGI middleware under a threaded server gives the same counts."""
        with serve_wsgi(RateLimitWSGI(hello_wsgi, limit=LIMIT, window=WINDOW)) as url:
            judge(asyncio.run(burst(url + "/", 2 * LIMIT)))


class TestBucket:
    def test_refill_and_retry_after(self) -> None:
        """The bucket refills at limit/window per second; Retry-After is the wait for one token."""
        clock = FakeClock()
        limiter = Limiter(limit=2, window=10, backend=MemoryBackend(), clock=clock)
        assert [limiter.decide("a").allowed for _ in range(3)] == [True, True, False]
        assert limiter.decide("a").retry_after == 5
        clock.advance(5)
        assert limiter.decide("a").allowed and not limiter.decide("a").allowed
        assert limiter.decide("b").allowed

    def test_paths_limit_only_their_prefix(self) -> None:
        """With paths, other routes are never limited."""
        app = RateLimit(hello, limit=1, window=60, paths=["/api"])
        with serve_asgi(app) as url:
            codes = [httpx.get(url + p).status_code for p in ("/api/x", "/api/x", "/", "/")]
        assert codes == [200, 429, 200, 200]

    def test_bad_policy_is_refused(self) -> None:
        """A limit below 1 or an empty window is a ValueError at construction."""
        with pytest.raises(ValueError):
            RateLimit(hello, limit=0)


async def _live(url: str, path: str, burst: int = 20) -> Any:
    from controltower.checks import CheckContext, run_checks, select
    from controltower.spec import parse_spec

    text = f'[service]\nname = "shop"\n[security]\nrate_limit_path = "{path}"\nrate_limit_burst = {burst}\n'
    async with httpx.AsyncClient(timeout=10) as client:
        ctx = CheckContext(spec=parse_spec(text), root=Path("."), url=url, client=client)
        run = await run_checks(ctx, select(["security.rate_limit"]))
    return run.findings[0]


class TestLiveCheck:
    def test_limited_route_passes(self) -> None:
        """security.rate_limit bursts the configured route of the given URL and meets a 429
        with Retry-After, then stops."""
        from controltower.checks import Status

        hits: list[str] = []

        async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
            hits.append(scope["path"])
            await hello(scope, receive, send)

        app = RateLimit(counted, limit=5, window=60, paths=["/api"])
        with serve_asgi(app) as url:
            finding = asyncio.run(_live(url, "/api/items"))
        assert finding.status is Status.PASS, finding.message
        assert "Retry-After" in finding.message and len(hits) == 5
        assert finding.data["sent"] <= 5 + 10  # stops once the 429 is seen (10 in flight at most)

    def test_unlimited_route_fails_within_the_budget(self) -> None:
        """A route that is never limited fails after exactly rate_limit_burst requests."""
        from controltower.checks import Status

        with serve_asgi(hello) as url:
            finding = asyncio.run(_live(url, "/api/items", burst=15))
        assert finding.status is Status.FAIL and finding.data["sent"] == 15
