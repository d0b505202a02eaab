"""Built-in checks. Client libraries are imported inside ``run`` so importing appkit stays light.

Every constructor takes the ``Check`` options: ``name``, ``critical`` (default
True), ``timeout`` (seconds, default 1), ``success_ttl`` and ``failure_ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import time
import weakref
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from controltower.appkit._check import Check, CheckFailed, FunctionCheck, Observation, check
from controltower.exceptions import CheckError

__all__ = [
    "DiskCheck",
    "EventLoopLagCheck",
    "FunctionCheck",
    "HttpCheck",
    "MemoryCheck",
    "PostgresCheck",
    "RedisCheck",
    "StripeCheck",
    "SupabaseCheck",
    "TcpCheck",
    "check",
    "disk",
    "event_loop_lag",
    "http",
    "memory",
    "postgres",
    "redis",
    "stripe",
    "supabase",
    "tcp",
]


def _url_secrets(url: str) -> tuple[str, ...]:
    parts = urlsplit(url)
    found = [parts.password, unquote(parts.password)] if parts.password else []
    return tuple(s for s in found if s)


class PostgresCheck(Check):
    """``SELECT 1`` (or ``query``) on PostgreSQL with psycopg 3, on a fresh connection or a pool."""

    component_type = "datastore"
    default_name = "postgres"

    def __init__(
        self, url: str, *, query: str = "SELECT 1", pool: Any = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.query = query
        self.pool = pool

    def secrets(self) -> tuple[str, ...]:
        return _url_secrets(self.url)

    async def run(self) -> None:
        if self.pool is not None:
            async with self.pool.connection() as conn:
                await conn.execute(self.query)
            return
        import psycopg

        conn = await psycopg.AsyncConnection.connect(
            self.url, connect_timeout=max(1, math.ceil(self.timeout)), autocommit=True
        )
        async with conn:
            await conn.execute(self.query)


class RedisCheck(Check):
    """``PING`` on Redis (needs the ``redis`` package: ``pip install controltower[redis]``)."""

    component_type = "datastore"
    default_name = "redis"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        self.url = url

    def secrets(self) -> tuple[str, ...]:
        return _url_secrets(self.url)

    async def run(self) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CheckFailed(
                "redis check needs the redis package: pip install 'controltower[redis]'"
            ) from exc
        client = aioredis.from_url(
            self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
        )
        try:
            if not await client.ping():
                raise CheckFailed(f"{self.name} did not answer PING")
        finally:
            await client.aclose()


class _HttpBase(Check):
    component_type = "system"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
            self._clients[loop] = client
        return client

    async def _get(self, url: str, headers: Mapping[str, str]) -> Any:
        return await self._client().get(url, headers=dict(headers))


class HttpCheck(_HttpBase):
    """GET an HTTP dependency; pass on an expected status, report latency in ms."""

    default_name = "http"

    def __init__(
        self,
        url: str,
        *,
        expect: Container[int] | Callable[[int], bool] = range(200, 400),
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("name", urlsplit(url).hostname or self.default_name)
        super().__init__(**options)
        self.url = url
        self.expect = expect
        self.headers = dict(headers or {})

    def secrets(self) -> tuple[str, ...]:
        values = [
            v
            for k, v in self.headers.items()
            if k.lower() in ("authorization", "apikey", "x-api-key")
        ]
        return (*_url_secrets(self.url), *values)

    def _expected(self, status: int) -> bool:
        return self.expect(status) if callable(self.expect) else status in self.expect

    async def run(self) -> None:
        response = await self._get(self.url, self.headers)
        if not self._expected(response.status_code):
            raise CheckFailed(f"{self.name} answered HTTP {response.status_code}")


STRIPE_API_BASE = "https://api.stripe.com"


class StripeCheck(_HttpBase):
    """An authenticated ``GET /v1/balance`` against ``api_base`` (default ``$STRIPE_API_BASE`` or Stripe)."""

    default_name = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        if not api_key:
            raise CheckError("stripe check: api_key is empty; pass the secret key (sk_...)")
        self.api_key = api_key
        base = api_base or os.environ.get("STRIPE_API_BASE") or STRIPE_API_BASE
        self.api_base = base.rstrip("/")

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,)

    async def run(self) -> Observation | None:
        response = await self._get(
            f"{self.api_base}/v1/balance", {"Authorization": f"Bearer {self.api_key}"}
        )
        return _judge_api(self.name, response.status_code)


class SupabaseCheck(_HttpBase):
    """``GET {url}/rest/v1/`` (or ``path``) with the anon key as ``apikey``."""

    default_name = "supabase"

    def __init__(self, url: str, anon_key: str, *, path: str = "/rest/v1/", **options: Any) -> None:
        super().__init__(**options)
        if not anon_key:
            raise CheckError("supabase check: anon_key is empty; pass the project's anon key")
        self.url = url.rstrip("/")
        self.anon_key = anon_key
        self.path = path

    def secrets(self) -> tuple[str, ...]:
        return (self.anon_key,)

    async def run(self) -> Observation | None:
        response = await self._get(
            f"{self.url}{self.path}",
            {"apikey": self.anon_key, "Authorization": f"Bearer {self.anon_key}"},
        )
        return _judge_api(self.name, response.status_code)


def _judge_api(name: str, status: int) -> Observation | None:
    if status in (401, 403):
        raise CheckFailed(f"{name} rejected the API key (HTTP {status})")
    if status == 429:
        return Observation(status="warn", output=f"{name} rate-limited the check (HTTP 429)")
    if status >= 400:
        raise CheckFailed(f"{name} answered HTTP {status}")
    return None


class TcpCheck(Check):
    """Open (and close) a TCP connection to ``host:port``."""

    default_name = "tcp"

    def __init__(self, host: str, port: int, **options: Any) -> None:
        options.setdefault("name", f"{host}:{port}")
        super().__init__(**options)
        self.host, self.port = host, port

    async def run(self) -> None:
        _, writer = await asyncio.open_connection(self.host, self.port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class DiskCheck(Check):
    """Free space on the filesystem holding ``path``: warn under ``warn_free``, fail under ``min_free``."""

    component_type = "system"
    default_name = "disk"
    measurement = "free"

    def __init__(
        self, path: str = "/", *, min_free: float = 0.05, warn_free: float = 0.1, **options: Any
    ) -> None:
        super().__init__(**options)
        self.path, self.min_free, self.warn_free = path, min_free, warn_free

    async def run(self) -> Observation:
        usage = shutil.disk_usage(self.path)
        free = usage.free / usage.total if usage.total else 0.0
        percent = round(free * 100, 2)
        if free < self.min_free:
            raise CheckFailed(
                f"{self.name}: only {percent}% free on {self.path} (minimum {self.min_free:.0%})"
            )
        if free < self.warn_free:
            return Observation(percent, "%", "warn", f"{percent}% free on {self.path}")
        return Observation(percent, "%")


def read_memory(cgroup_root: str = "/sys/fs/cgroup") -> tuple[int, int | None]:
    """(working set bytes, limit bytes or None) from cgroup v2, else v1, else this process's RSS."""
    root = Path(cgroup_root)

    def number(path: Path) -> int | None:
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        return None if text in ("max", "") or not text.isdigit() else int(text)

    def inactive_file(stat: Path, key: str) -> int:
        try:
            for line in stat.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    if (current := number(root / "memory.current")) is not None:
        used = current - inactive_file(root / "memory.stat", "inactive_file")
        return max(used, 0), number(root / "memory.max")
    v1 = root / "memory"
    if (current := number(v1 / "memory.usage_in_bytes")) is not None:
        used = current - inactive_file(v1 / "memory.stat", "total_inactive_file")
        limit = number(v1 / "memory.limit_in_bytes")
        return max(used, 0), limit if limit is not None and limit < 1 << 60 else None
    return _process_rss(), None


def _process_rss() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class MemoryCheck(Check):
    """Memory in use against the container limit (cgroup v2/v1) or a configured ``limit`` in bytes."""

    component_type = "system"
    default_name = "memory"
    measurement = "utilization"

    def __init__(
        self,
        *,
        limit: int | None = None,
        warn_above: float = 0.8,
        fail_above: float = 0.95,
        cgroup_root: str = "/sys/fs/cgroup",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.limit, self.warn_above, self.fail_above = limit, warn_above, fail_above
        self.cgroup_root = cgroup_root

    async def run(self) -> Observation:
        used, cgroup_limit = read_memory(self.cgroup_root)
        limit = self.limit or cgroup_limit
        if not limit:
            return Observation(
                used, "bytes", "pass", "no memory limit found; reporting bytes in use"
            )
        share = used / limit
        percent = round(share * 100, 2)
        if share > self.fail_above:
            raise CheckFailed(f"{self.name}: {percent}% of the {limit} byte limit in use")
        if share > self.warn_above:
            return Observation(percent, "%", "warn", f"{percent}% of the {limit} byte limit in use")
        return Observation(percent, "%")


class EventLoopLagCheck(Check):
    """How late a short timer fires on the event loop: warn above ``warn_ms``, fail above ``fail_ms``."""

    component_type = "system"
    default_name = "eventloop"
    measurement = "lag"

    def __init__(
        self,
        *,
        warn_ms: float = 100.0,
        fail_ms: float = 500.0,
        interval: float = 0.01,
        **options: Any,
    ) -> None:
        options.setdefault("critical", False)
        super().__init__(**options)
        self.warn_ms, self.fail_ms, self.interval = warn_ms, fail_ms, interval

    async def run(self) -> Observation:
        scheduled = time.perf_counter()
        await asyncio.sleep(self.interval)
        lag = round(max(0.0, time.perf_counter() - scheduled - self.interval) * 1000, 3)
        if lag > self.fail_ms:
            raise CheckFailed(f"{self.name}: event loop lag {lag} ms (limit {self.fail_ms} ms)")
        if lag > self.warn_ms:
            return Observation(lag, "ms", "warn", f"event loop lag {lag} ms")
        return Observation(lag, "ms")


postgres = PostgresCheck
redis = RedisCheck
http = HttpCheck
stripe = StripeCheck
supabase = SupabaseCheck
tcp = TcpCheck
disk = DiskCheck
memory = MemoryCheck
event_loop_lag = EventLoopLagCheck
