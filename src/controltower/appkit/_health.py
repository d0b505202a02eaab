"""``Health``: liveness and readiness endpoints over concurrent, bounded, cached checks."""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from controltower.appkit._check import Check, CheckFailed, Observation, Status
from controltower.appkit._redact import redact, short_reason
from controltower.clock import system_clock
from controltower.exceptions import CheckError
from controltower.typing import Clock

HEALTH_JSON = b"application/health+json"
PLAIN_JSON = b"application/json"
Style = Literal["ietf", "simple"]


_SECOND: tuple[int, str] = (-1, "")


def _iso(epoch: float) -> str:
    """``epoch`` as ``2026-01-01T00:00:05.123Z`` (UTC, milliseconds), cheaply: the part up to
    the second is formatted once per second."""
    global _SECOND
    second = math.floor(epoch)
    micros = round((epoch - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached_second, prefix = _SECOND
    if cached_second != second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND = (second, prefix)
    return f"{prefix}.{micros // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check run."""

    check: Check
    status: Status
    observed_value: float | int | str | None
    observed_unit: str | None
    time: float
    duration: float
    output: str = ""

    def as_ietf(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"componentType": self.check.component_type}
        if self.observed_value is not None:
            entry["observedValue"] = self.observed_value
        if self.observed_unit is not None:
            entry["observedUnit"] = self.observed_unit
        entry["status"] = self.status
        entry["time"] = _iso(self.time)
        if self.output:
            entry["output"] = self.output
        return entry


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A readiness answer: overall status and every check's result."""

    status: Status
    results: tuple[CheckResult, ...]
    version: str
    release_id: str
    uptime: float
    time: float = field(default_factory=time.time)

    @property
    def http_status(self) -> int:
        return 503 if self.status == "fail" else 200

    def as_ietf(
        self, *, service_id: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "version": self.version,
            "releaseId": self.release_id,
        }
        if service_id:
            body["serviceId"] = service_id
        if description:
            body["description"] = description
        body["timestamp"] = _iso(self.time)
        body["uptime"] = round(self.uptime, 3)
        checks: dict[str, list[dict[str, Any]]] = {}
        for result in self.results:
            checks.setdefault(result.check.key, []).append(result.as_ietf())
        body["checks"] = checks
        return body

    def as_simple(self) -> dict[str, Any]:
        return {
            "status": "unhealthy" if self.status == "fail" else "healthy",
            "timestamp": _iso(self.time),
            "version": self.version,
        }


def overall(results: Iterable[CheckResult]) -> Status:
    status: Status = "pass"
    for result in results:
        if result.status == "fail" and result.check.critical:
            return "fail"
        if result.status != "pass":
            status = "warn"
    return status


class _Slot:
    """Cache and in-flight run of one check."""

    __slots__ = ("entry", "loop", "task")

    def __init__(self) -> None:
        self.entry: tuple[CheckResult, float] | None = None
        self.task: asyncio.Task[CheckResult] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Health:
    """Liveness and readiness for one app, from one object.

    Checks run concurrently, each bounded by its own timeout, so readiness
    answers within the largest timeout plus a few milliseconds even when a
    dependency hangs. Results are cached (``success_ttl``/``failure_ttl``,
    per check overridable) and concurrent requests share one in-flight run.
    """

    def __init__(
        self,
        *checks: Check,
        version: str | None = None,
        release_id: str | None = None,
        service_id: str | None = None,
        description: str | None = None,
        success_ttl: float = 2.0,
        failure_ttl: float = 0.5,
        live_path: str = "/api/health/live",
        ready_path: str = "/api/health",
        simple_path: str | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if any(not isinstance(c, Check) for c in checks):
            raise CheckError("Health(...) takes Check objects; wrap functions with @check(...)")
        if success_ttl < 0 or failure_ttl < 0:
            raise CheckError("Health: success_ttl and failure_ttl must be >= 0 seconds")
        self.checks: tuple[Check, ...] = tuple(checks)
        self.version = version or os.environ.get("APP_VERSION") or "dev"
        self.release_id = release_id or self.version
        self.service_id = service_id
        self.description = description
        self.success_ttl = success_ttl
        self.failure_ttl = failure_ttl
        self.live_path = live_path
        self.ready_path = ready_path
        self.simple_path = simple_path
        self.clock = clock
        self.started = clock.time()
        self._slots = {c: _Slot() for c in self.checks}
        self._snapshot: tuple[tuple[CheckResult, ...], float] | None = None
        self._rendered: dict[str, tuple[tuple[CheckResult, ...], bytes, bytes, bytes]] = {}
        self._mark = f"@@{secrets.token_hex(8)}@@"
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_pid = 0
        self._lock = threading.Lock()
        self.liveness = HealthEndpoint(self, "live")
        self.readiness = HealthEndpoint(self, "ietf")
        self.simple = HealthEndpoint(self, "simple")

    # -- running checks -------------------------------------------------
    def _ttl(self, check: Check, status: Status) -> float:
        if status == "pass":
            return self.success_ttl if check.success_ttl is None else check.success_ttl
        return self.failure_ttl if check.failure_ttl is None else check.failure_ttl

    def _cached(self, check: Check) -> CheckResult | None:
        entry = self._slots[check].entry
        if entry is not None and self.clock.monotonic() < entry[1]:
            return entry[0]
        return None

    async def _run_bounded(self, check: Check) -> CheckResult:
        clock = self.clock
        at, started = clock.time(), time.perf_counter()
        task = asyncio.ensure_future(check.run())
        done, _ = await asyncio.wait((task,), timeout=check.timeout)
        elapsed = time.perf_counter() - started
        latency = round(elapsed * 1000, 3)
        status: Status = "pass"
        value: float | int | str | None = latency
        unit: str | None = "ms"
        output = ""
        if not done:
            task.cancel()
            task.add_done_callback(_consume)
            status = "fail"
            output = f"{check.name} did not answer within {check.timeout * 1000:.0f} ms"
        elif (exc := task.exception()) is not None:
            status = "fail"
            if isinstance(exc, CheckFailed):
                output = redact(exc.message, check.secrets())
            else:
                output = check.describe_failure(short_reason(exc, check.secrets()))
        else:
            observation = task.result()
            if isinstance(observation, Observation):
                status = observation.status
                output = redact(observation.output, check.secrets())
                if observation.value is not None:
                    value, unit = observation.value, observation.unit
        if status == "fail" and not check.critical:
            status = "warn"
        result = CheckResult(check, status, value, unit, at, elapsed, output)
        self._slots[check].entry = (result, clock.monotonic() + self._ttl(check, status))
        self._snapshot = None
        return result

    async def _result(self, check: Check) -> CheckResult:
        cached = self._cached(check)
        if cached is not None:
            return cached
        slot = self._slots[check]
        loop = asyncio.get_running_loop()
        task = slot.task
        if task is None or task.done() or slot.loop is not loop:
            task = loop.create_task(self._run_bounded(check))
            slot.task, slot.loop = task, loop
        return await asyncio.shield(task)

    def _report(self, results: Sequence[CheckResult]) -> HealthReport:
        now = self.clock.time()
        return HealthReport(
            overall(results), tuple(results), self.version, self.release_id, now - self.started, now
        )

    def cached_report(self) -> HealthReport | None:
        """The readiness report if every check has a fresh cached result, else None."""
        now = self.clock.monotonic()
        snapshot = self._snapshot
        if snapshot is not None and now < snapshot[1]:
            return self._report(snapshot[0])
        results = []
        expires = math.inf
        for c in self.checks:
            entry = self._slots[c].entry
            if entry is None or now >= entry[1]:
                return None
            results.append(entry[0])
            expires = min(expires, entry[1])
        fresh = tuple(results)
        self._snapshot = (fresh, expires)
        return self._report(fresh)

    async def run(self) -> HealthReport:
        """Run (or reuse) every check and return the readiness report."""
        report = self.cached_report()
        if report is not None:
            return report
        results = await asyncio.gather(*(self._result(c) for c in self.checks))
        return self._report(results)

    def run_sync(self) -> HealthReport:
        """``run`` for threaded (WSGI) apps: checks run on one background event loop."""
        report = self.cached_report()
        if report is not None:
            return report
        return asyncio.run_coroutine_threadsafe(self.run(), self._background_loop()).result()

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._thread_loop is None or self._thread_pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="controltower-health", daemon=True
                )
                thread.start()
                self._thread_loop, self._thread_pid = loop, os.getpid()
            return self._thread_loop

    def invalidate(self) -> None:
        """Forget cached results: the next readiness request runs every check."""
        for slot in self._slots.values():
            slot.entry = None
        self._snapshot = None

    # -- bodies ----------------------------------------------------------
    def live_body(self) -> dict[str, Any]:
        now = self.clock.time()
        return {
            "status": "pass",
            "version": self.version,
            "releaseId": self.release_id,
            "timestamp": _iso(now),
            "uptime": round(now - self.started, 3),
        }

    def render(self, report: HealthReport, style: Style = "ietf") -> tuple[int, bytes, bytes]:
        """Status code, body and content type of a report in the given style.

        The body is serialized once per set of results; each answer only fills in
        ``timestamp`` and ``uptime``, so a cached readiness answer costs little more
        than a bare JSON endpoint.
        """
        cached = self._rendered.get(style)
        if cached is None or cached[0] is not report.results:
            cached = (report.results, *self._template(report, style))
            self._rendered[style] = cached
        _, before, between, after = cached
        stamp = _iso(report.time).encode()
        if style == "simple":
            return report.http_status, before + stamp + between, PLAIN_JSON
        uptime = repr(round(report.uptime, 3)).encode()
        return report.http_status, before + stamp + between + uptime + after, HEALTH_JSON

    def _template(self, report: HealthReport, style: Style) -> tuple[bytes, bytes, bytes]:
        """The body split around its timestamp (and uptime): (before, between, after)."""
        mark = self._mark
        if style == "simple":
            body = report.as_simple()
            body["timestamp"] = mark
            before, after = _dumps(body).split(mark.encode())
            return before, after, b""
        body = report.as_ietf(service_id=self.service_id, description=self.description)
        body["timestamp"], body["uptime"] = mark, mark + "u"
        before, rest = _dumps(body).split(mark.encode() + b'"', 1)
        between, after = rest.split(b'"' + mark.encode() + b'u"', 1)
        return before, b'"' + between, after

    def respond(self, kind: str, report: HealthReport | None) -> tuple[int, bytes, bytes]:
        if kind == "live" or report is None:
            return 200, _dumps(self.live_body()), HEALTH_JSON
        return self.render(report, "simple" if kind == "simple" else "ietf")

    def paths(self) -> dict[str, str]:
        """Path -> endpoint kind (``live``, ``ietf``, ``simple``) for the configured paths."""
        found = {self.live_path: "live", self.ready_path: "ietf"}
        if self.simple_path:
            found[self.simple_path] = "simple"
        return found

    # -- mounting --------------------------------------------------------
    def asgi(self, app: Any) -> Any:
        """Wrap any ASGI app so the health paths answer before it is called."""
        from controltower.appkit._asgi import HealthMiddleware

        return HealthMiddleware(app, health=self)

    def wsgi(self, app: Any) -> Any:
        """Wrap any WSGI app so the health paths answer before it is called."""
        from controltower.appkit._wsgi import HealthWSGI

        return HealthWSGI(app, health=self)

    def mount(self, app: Any) -> Any:
        """Add the health routes to a Starlette/FastAPI or Flask app (returns the app)."""
        from controltower.appkit._frameworks import mount_health

        return mount_health(self, app)

    def django_urls(self) -> list[Any]:
        """``urlpatterns`` entries for Django: ``urlpatterns += health.django_urls()``."""
        from controltower.appkit._frameworks import django_health_urls

        return django_health_urls(self)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class HealthEndpoint:
    """A plain ASGI app answering one health endpoint (``live``, ``ietf`` or ``simple``)."""

    def __init__(self, health: Health, kind: str) -> None:
        self.health = health
        self.kind = kind

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("method", "GET") not in ("GET", "HEAD"):
            await _send(send, 405, b'{"error":"method not allowed"}', PLAIN_JSON, allow=True)
            return
        report = None if self.kind == "live" else await self.health.run()
        status, body, content_type = self.health.respond(self.kind, report)
        await _send(send, status, body, content_type)


async def _send(
    send: Any, status: int, body: bytes, content_type: bytes, allow: bool = False
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
