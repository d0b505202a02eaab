"""Rate limiting for ASGI and WSGI apps: a token bucket per client, 429 with Retry-After.

Each client (by default its address) has a bucket of ``limit`` tokens that
refills at ``limit / window`` tokens a second; a request takes one token, and
a request that finds none is answered 429 with ``Retry-After`` (seconds until
a token is back). Every answer carries the IETF headers of
draft-ietf-httpapi-ratelimit-headers (``RateLimit-Policy: "default";q=100;w=60``
and ``RateLimit: "default";r=42;t=12``). Buckets live in memory (one process)
in Redis or in PostgreSQL (shared by every process and machine); their client
libraries are imported only when that backend is built.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from controltower.clock import system_clock

POLICY = "default"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int
    reset: int


class Backend(Protocol):
    def take(self, key: str, limit: int, rate: float, now: float) -> tuple[bool, float]:
        """Take a token from ``key``'s bucket; return whether one was there and what is left."""


class MemoryBackend:
    """Buckets in this process: right for one worker; several workers each count apart."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, limit: int, rate: float, now: float) -> tuple[bool, float]:
        with self._lock:
            tokens, updated = self._buckets.get(key, (float(limit), now))
            tokens = min(float(limit), tokens + max(0.0, now - updated) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            return allowed, tokens


class PostgresBackend:
    """Buckets in a PostgreSQL table, one row per client, updated under a row lock, so every
    process and machine shares one count. ``url`` is a libpq URL."""

    def __init__(self, url: str, *, table: str = "appkit_rate_limits") -> None:
        if not table.replace("_", "").isalnum():
            raise ValueError(f"table name {table!r}: letters, digits and _ only")
        import psycopg

        self._connection = psycopg.connect(url, autocommit=False)
        self._table = table
        self._lock = threading.Lock()
        with self._lock, self._connection.transaction():
            self._connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(key text PRIMARY KEY, tokens double precision NOT NULL, updated double precision NOT NULL)"
            )

    def take(self, key: str, limit: int, rate: float, now: float) -> tuple[bool, float]:
        table = self._table
        with self._lock, self._connection.transaction():
            self._connection.execute(
                f"INSERT INTO {table} (key, tokens, updated) VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING",
                (key, float(limit), now),
            )
            row = self._connection.execute(
                f"SELECT tokens, updated FROM {table} WHERE key = %s FOR UPDATE", (key,)
            ).fetchone()
            assert row is not None
            tokens = min(float(limit), float(row[0]) + max(0.0, now - float(row[1])) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._connection.execute(
                f"UPDATE {table} SET tokens = %s, updated = %s WHERE key = %s", (tokens, now, key)
            )
            return allowed, tokens

    def close(self) -> None:
        self._connection.close()


_BUCKET_LUA = """
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local limit, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(state[1]) or limit
local updated = tonumber(state[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - updated) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(limit / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RedisBackend:
    """Buckets in Redis, one hash per client updated by one Lua script (atomic on the
    server), expiring once full again; ``url`` is a redis:// URL."""

    def __init__(self, url: str, *, prefix: str = "appkit:ratelimit:") -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self._script = self._client.register_script(_BUCKET_LUA)
        self._prefix = prefix

    def take(self, key: str, limit: int, rate: float, now: float) -> tuple[bool, float]:
        allowed, tokens = self._script(keys=[self._prefix + key], args=[limit, rate, now])
        return bool(allowed), float(tokens)

    def close(self) -> None:
        self._client.close()


class Limiter:
    """The policy: ``limit`` requests per ``window`` seconds per client, over ``backend``."""

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        backend: Backend | None = None,
        clock: Any = system_clock,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window above 0 seconds")
        self.limit, self.window = limit, window
        self.rate = limit / window
        self.backend: Backend = backend or MemoryBackend()
        self.clock = clock

    def decide(self, key: str) -> Decision:
        allowed, tokens = self.backend.take(key, self.limit, self.rate, self.clock.time())
        missing = 0.0 if allowed else 1.0 - tokens
        return Decision(
            allowed,
            max(0, math.floor(tokens)),
            math.ceil(missing / self.rate) if not allowed else 0,
            math.ceil((self.limit - tokens) / self.rate),
        )

    def headers(self, decision: Decision) -> list[tuple[str, str]]:
        found = [
            ("ratelimit-policy", f'"{POLICY}";q={self.limit};w={math.ceil(self.window)}'),
            ("ratelimit", f'"{POLICY}";r={decision.remaining};t={decision.reset}'),
        ]
        if not decision.allowed:
            found.append(("retry-after", str(max(1, decision.retry_after))))
        return found


BODY = json.dumps({"error": "too many requests"}).encode()


def _applies(path: str, paths: tuple[str, ...]) -> bool:
    return not paths or any(path == p or path.startswith(p.rstrip("/") + "/") for p in paths)


class RateLimit:
    """ASGI middleware: ``RateLimit(app, limit=100, window=60, paths=["/api"])``.

    ``key(scope)`` names the client (default: the peer address); ``paths`` limits
    only those prefixes (default: every path)."""

    def __init__(
        self,
        app: Any,
        *,
        limit: int = 100,
        window: float = 60.0,
        backend: Backend | None = None,
        paths: Iterable[str] = (),
        key: Callable[[dict[str, Any]], str] | None = None,
        clock: Any = system_clock,
    ) -> None:
        self.app = app
        self.limiter = Limiter(limit=limit, window=window, backend=backend, clock=clock)
        self.paths = tuple(paths)
        self.key = key or (lambda scope: str((scope.get("client") or ("unknown",))[0]))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _applies(scope.get("path", ""), self.paths):
            await self.app(scope, receive, send)
            return
        import asyncio

        decision = await asyncio.to_thread(self.limiter.decide, self.key(scope))
        extra = [(k.encode(), v.encode()) for k, v in self.limiter.headers(decision)]
        if not decision.allowed:
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(BODY)).encode()),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": BODY})
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class RateLimitWSGI:
    """WSGI middleware with the same policy: ``app.wsgi_app = RateLimitWSGI(app.wsgi_app, limit=100)``."""

    def __init__(
        self,
        app: Any,
        *,
        limit: int = 100,
        window: float = 60.0,
        backend: Backend | None = None,
        paths: Iterable[str] = (),
        key: Callable[[dict[str, Any]], str] | None = None,
        clock: Any = system_clock,
    ) -> None:
        self.app = app
        self.limiter = Limiter(limit=limit, window=window, backend=backend, clock=clock)
        self.paths = tuple(paths)
        self.key = key or (lambda environ: str(environ.get("REMOTE_ADDR", "unknown")))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not _applies(environ.get("PATH_INFO", ""), self.paths):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        decision = self.limiter.decide(self.key(environ))
        extra = [(k.title(), v) for k, v in self.limiter.headers(decision)]
        if not decision.allowed:
            start_response(
                "429 Too Many Requests",
                [("Content-Type", "application/json"), ("Content-Length", str(len(BODY))), *extra],
            )
            return [BODY]

        def with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, with_headers)  # type: ignore[no-any-return]
