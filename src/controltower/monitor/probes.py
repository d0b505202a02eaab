"""Probes: how each monitor type looks at its target, and how a check is judged.

A probe returns a context (``status``, ``latency``, ``body``, ``cert_days``...)
and ``judge`` evaluates the monitor's conditions on it: any failing condition
makes the check ``critical`` (or the monitor's severity), any failing
``warning`` condition a ``warning``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from controltower.conditions import Condition, ConditionResult, parse_condition
from controltower.exceptions import MonitorError, TowerError
from controltower.load.client import ConnectError, ProtocolError
from controltower.monitor.http import REDIRECTS, PlainHttp
from controltower.promexpr import CounterMemory, Expression, parse_samples
from controltower.spec import Spec
from controltower.spec.monitors import MonitorSpec, MonitorType

if TYPE_CHECKING:
    from controltower.deploy.drivers.base import Driver

OK, WARNING, CRITICAL = "ok", "warning", "critical"
_BODY_LIMIT = 1024 * 1024

DEFAULT_CONDITIONS: dict[MonitorType, tuple[str, ...]] = {
    MonitorType.HTTP: ("status < 400",),
    MonitorType.KEYWORD: ("status < 400", "keyword == true"),
    MonitorType.TCP: ("connected == true",),
    MonitorType.TLS: ("cert_days > 14",),
    MonitorType.HEARTBEAT: ("alive == true",),
    MonitorType.PROMETHEUS: ("status == 200",),
    MonitorType.MACHINE: ("crashed == 0", "running >= 1"),
    MonitorType.VITALS: (
        "vitals.lcp.p75 <= 2500",
        "vitals.inp.p75 <= 200",
        "vitals.cls.p75 <= 0.1",
    ),
}


@dataclass(frozen=True)
class CheckOutcome:
    """One check of one monitor: its level, what it saw and each condition's verdict."""

    monitor: str
    at: datetime
    level: str
    latency: float
    context: dict[str, Any]
    results: list[ConditionResult] = field(default_factory=list)
    warnings: list[ConditionResult] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.level == OK

    @property
    def message(self) -> str:
        if self.error:
            return self.error
        failed = [r.message for r in self.results if not r.ok]
        failed += [r.message for r in self.warnings if not r.ok]
        return "; ".join(failed) if failed else "all conditions pass"


def conditions_of(monitor: MonitorSpec) -> list[Condition]:
    if monitor.conditions:
        return list(monitor.conditions)
    return [parse_condition(text) for text in DEFAULT_CONDITIONS[monitor.type]]


def _sampled(condition: Condition, context: Mapping[str, Any], least: int) -> bool:
    """A vitals condition is judged once its metric has ``least`` samples in the window."""
    parts = condition.subject.split(".")
    if len(parts) < 2 or parts[0] != "vitals":
        return True
    metric = context.get("vitals", {}).get(parts[1].lower(), {})
    return int(metric.get("count", 0)) >= least


def judge(
    monitor: MonitorSpec,
    context: Mapping[str, Any],
    *,
    at: datetime,
    latency: float,
    error: str = "",
) -> CheckOutcome:
    """Evaluate the monitor's conditions on ``context``; an ``error`` is always critical."""
    failing_level = monitor.severity.value
    if error:
        return CheckOutcome(monitor.name, at, failing_level, latency, dict(context), error=error)
    conditions, warning = conditions_of(monitor), list(monitor.warning)
    if monitor.type is MonitorType.VITALS:
        conditions = [c for c in conditions if _sampled(c, context, monitor.min_samples)]
        warning = [c for c in warning if _sampled(c, context, monitor.min_samples)]
    results = [condition.evaluate(context) for condition in conditions]
    warnings = [condition.evaluate(context) for condition in warning]
    if not all(result.ok for result in results):
        level = failing_level
    elif not all(result.ok for result in warnings):
        level = WARNING
    else:
        level = OK
    return CheckOutcome(monitor.name, at, level, latency, dict(context), results, warnings)


@dataclass
class ProbeEnv:
    """What probes share: HTTP clients, the deploy driver's instances, a clock, counter memories.

    ``for_spec`` fills it from a tower.toml: the driver's instance listing and
    the service's memory (what ``memory_pct`` is a percentage of).
    """

    instances: Callable[[], list[dict[str, Any]]] | None = None
    driver_name: str = "deploy"
    memory_limit: float | None = None
    last_ping: Callable[[str], Any] | None = None
    vitals: Callable[[MonitorSpec], dict[str, Any]] | None = None
    now: Callable[[], datetime] = field(default_factory=lambda: lambda: datetime.now(UTC))
    max_connections: int = 1000
    plain: PlainHttp = field(default_factory=PlainHttp)
    _clients: dict[tuple[bool, str], httpx.AsyncClient] = field(default_factory=dict)
    _memories: dict[str, CounterMemory] = field(default_factory=dict)

    def client(self, monitor: MonitorSpec) -> httpx.AsyncClient:
        key = (monitor.verify, monitor.ca_file)
        if key not in self._clients:
            verify: bool | ssl.SSLContext = monitor.verify
            if monitor.verify and monitor.ca_file:
                verify = ssl.create_default_context(cafile=monitor.ca_file)
            self._clients[key] = httpx.AsyncClient(
                verify=verify,
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                ),
                headers={"user-agent": "controltower-monitor"},
            )
        return self._clients[key]

    @classmethod
    def for_spec(cls, spec: Spec, *, root: Path, **values: Any) -> ProbeEnv:
        return cls(
            instances=driver_instances(spec, root=root),
            driver_name=spec.deploy.driver.value,
            memory_limit=float(spec.service.memory),
            **values,
        )

    def memory(self, name: str) -> CounterMemory:
        return self._memories.setdefault(name, CounterMemory())

    async def aclose(self) -> None:
        self.plain.close()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


class Probe(ABC):
    """Looks at one kind of target and returns the context conditions run on."""

    @abstractmethod
    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]: ...


def _cert_days(not_after: str, now: datetime) -> float:
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    return round((expires - now).total_seconds() / 86400, 3)


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def _text(content: bytes, content_type: str) -> str:
    try:
        return content.decode(_charset(content_type), "replace")
    except LookupError:
        return content.decode("utf-8", "replace")


def _decode_body(text: str, content_type: str) -> Any:
    if "json" in content_type or text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


@dataclass(frozen=True)
class Answer:
    """What an HTTP check saw, whichever client made the request."""

    status: int
    headers: dict[str, str]
    content: bytes
    latency: float
    url: str
    cert_days: float | None = None


async def fetch(monitor: MonitorSpec, env: ProbeEnv, *, method: str | None = None) -> Answer:
    """``monitor``'s request: plain HTTP on pooled connections, HTTPS and redirects by httpx."""
    chosen = method or monitor.method
    if env.plain.handles(monitor) and chosen == monitor.method:
        got = await env.plain.fetch(monitor)
        if not (monitor.follow_redirects and got.status in REDIRECTS and "location" in got.headers):
            return Answer(got.status, got.headers, got.body, got.latency, monitor.url)
    client = env.client(monitor)
    started = time.perf_counter()
    response = await client.request(
        chosen,
        monitor.url,
        headers=monitor.headers or None,
        content=monitor.body.encode() if monitor.body and method is None else None,
        timeout=monitor.timeout,
        follow_redirects=monitor.follow_redirects,
    )
    latency = time.perf_counter() - started
    cert_days = None
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is not None:
        cert = ssl_object.getpeercert()
        if cert and cert.get("notAfter"):
            cert_days = _cert_days(str(cert["notAfter"]), env.now())
    return Answer(
        response.status_code,
        dict(response.headers),
        response.content,
        latency,
        str(response.url),
        cert_days,
    )


class HttpProbe(Probe):
    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]:
        answer = await fetch(monitor, env)
        content_type = answer.headers.get("content-type", "")
        text = _text(answer.content[:_BODY_LIMIT], content_type)
        context: dict[str, Any] = {
            "status": answer.status,
            "latency": answer.latency,
            "body": _decode_body(text, content_type),
            "header": answer.headers,
            "url": answer.url,
        }
        if answer.cert_days is not None:
            context["cert_days"] = answer.cert_days
        if monitor.type is MonitorType.KEYWORD:
            full = (
                text if len(answer.content) <= _BODY_LIMIT else _text(answer.content, content_type)
            )
            context["keyword"] = bool(monitor.keyword) and monitor.keyword in full
        return context


def _host_port(monitor: MonitorSpec, default_port: int) -> tuple[str, int]:
    if monitor.host:
        return monitor.host, monitor.port or default_port
    parts = urlsplit(monitor.url if "://" in monitor.url else f"tcp://{monitor.url}")
    if not parts.hostname:
        raise MonitorError(
            f"monitor {monitor.name!r} has no host", hint="set host and port, or url"
        )
    return parts.hostname, monitor.port or parts.port or default_port


class TcpProbe(Probe):
    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]:
        host, port = _host_port(monitor, 80)
        started = time.perf_counter()
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), monitor.timeout
        )
        latency = time.perf_counter() - started
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return {"connected": True, "latency": latency, "host": host, "port": port}


class TlsProbe(Probe):
    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]:
        host, port = _host_port(monitor, 443)
        context = ssl.create_default_context(cafile=monitor.ca_file or None)
        if not monitor.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        started = time.perf_counter()
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host),
            monitor.timeout,
        )
        latency = time.perf_counter() - started
        ssl_object = writer.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        if not cert and ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            cert = _decode_der(der) if der else None
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        result: dict[str, Any] = {"connected": True, "latency": latency}
        if cert and cert.get("notAfter"):
            result["cert_days"] = _cert_days(str(cert["notAfter"]), env.now())
            result["cert_expires"] = str(cert["notAfter"])
        return result


def _decode_der(der: bytes) -> dict[str, Any] | None:
    import tempfile

    pem = ssl.DER_cert_to_PEM_cert(der)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
        handle.write(pem)
        handle.flush()
        decoded: dict[str, Any] = ssl._ssl._test_decode_cert(handle.name)  # type: ignore[attr-defined]
    return decoded


class HeartbeatProbe(Probe):
    """Alive while pings arrive every ``interval`` (plus ``grace``) and none says fail."""

    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]:
        if env.last_ping is None:
            raise MonitorError("heartbeat monitors need the store")
        last_at, last_status, since = await asyncio.to_thread(env.last_ping, monitor.name)
        now = env.now()
        reference = last_at or since
        age = (now - reference).total_seconds() if reference else 0.0
        overdue = age > monitor.interval + monitor.grace
        alive = not overdue and last_status != "fail"
        return {
            "alive": alive,
            "since_last_ping": age if last_at else None,
            "last_status": last_status or "none",
            "pinged": last_at is not None,
        }


class VitalsProbe(Probe):
    """p75 web vitals over the monitor's window, from the beacons ``tower serve`` stored."""

    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]:
        if env.vitals is None:
            raise MonitorError("vitals monitors need the store")
        context = await asyncio.to_thread(env.vitals, monitor)
        metrics = context.get("vitals", {})
        context["samples"] = sum(int(m.get("count", 0)) for m in metrics.values())
        return context


LIMIT_METRIC = "tower_memory_limit_bytes"
DEFAULT_METRICS = {
    "memory_bytes": "process_resident_memory_bytes",
    "memory_pct": f"process_resident_memory_bytes / {LIMIT_METRIC} * 100",
    "requests": "increase(http_requests_total)",
    "error_rate": 'increase(http_requests_total{status=~"5.."}) / increase(http_requests_total)',
}


@functools.lru_cache(maxsize=1024)
def _expression(text: str) -> Expression:
    return Expression(text)


class PrometheusProbe(Probe):
    """Scrapes a ``/metrics`` page and evaluates ``metrics`` (and the defaults) over it.

    Always available when the app exports them: ``memory_bytes``, ``memory_pct``
    (of the monitor's ``memory_limit``, else ``[service] memory``), ``requests``
    and ``error_rate`` (5xx share of the requests since the previous scrape).
    """

    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]:
        answer = await fetch(monitor, env, method="GET")
        context: dict[str, Any] = {"status": answer.status, "latency": answer.latency}
        if answer.status != 200:
            return context
        samples = parse_samples(_text(answer.content, answer.headers.get("content-type", "")))
        limit = monitor.memory_limit or env.memory_limit
        if limit and not any(name == LIMIT_METRIC for name, _labels, _value in samples):
            samples.append((LIMIT_METRIC, {}, float(limit)))
        now = time.monotonic()
        values: dict[str, Any] = {}
        for name, text in {**DEFAULT_METRICS, **monitor.metrics}.items():
            # Each expression remembers its own previous scrape: two using
            # increase() of one counter must not see each other's update.
            memory = env.memory(f"{monitor.name}\0{name}")
            value = _expression(text).evaluate(samples, now=now, memory=memory)
            if value is not None:
                values[name] = value
                context[name] = value
        context["metrics"] = values
        return context


class MachineProbe(Probe):
    """Instances as the deploy driver reports them: the local agent, Fly Machines, exec state."""

    async def observe(self, monitor: MonitorSpec, env: ProbeEnv) -> dict[str, Any]:
        if env.instances is None:
            raise MonitorError(
                "machine monitors need the service's [deploy] settings",
                hint="run them with `tower monitor`, which reads [deploy] from tower.toml",
            )
        listing = env.instances
        try:
            instances = await asyncio.wait_for(asyncio.to_thread(listing), monitor.timeout)
        except TowerError as exc:
            raise MonitorError(
                f"the {env.driver_name} driver cannot list instances: {exc}"
            ) from None
        return machine_context(instances)


def driver_instances(
    spec: Spec, *, root: Path, environ: Mapping[str, str] | None = None
) -> Callable[[], list[dict[str, Any]]]:
    """A function listing the deploy driver's instances (the driver is made on first use)."""
    made: list[Driver] = []

    def listing() -> list[dict[str, Any]]:
        if not made:
            from controltower.deploy.drivers.factory import make_driver

            made.append(make_driver(spec, root=root, environ=dict(environ or os.environ)))
        return [
            {
                "id": item.id,
                "release": item.release,
                "version": item.version,
                "state": item.state,
                "healthy": bool(item.healthy),
                **{k: v for k, v in item.detail.items() if k in ("region", "restarts")},
            }
            for item in made[0].instances()
        ]

    return listing


def machine_context(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts conditions can use: ``running``, ``crashed``, ``healthy``, ``total``..."""

    def count(*states: str) -> int:
        return sum(1 for item in instances if item.get("state") in states)

    return {
        "instances": instances,
        "total": len(instances),
        "running": count("running"),
        "starting": count("starting", "created"),
        "stopped": count("stopped", "suspended"),
        "crashed": count("crashed", "failed"),
        "healthy": sum(1 for item in instances if item.get("healthy")),
        "restarts": sum(int(item.get("restarts") or 0) for item in instances),
        "versions": sorted({str(item.get("version", "")) for item in instances}),
    }


PROBES: dict[MonitorType, Probe] = {
    MonitorType.HTTP: HttpProbe(),
    MonitorType.KEYWORD: HttpProbe(),
    MonitorType.TCP: TcpProbe(),
    MonitorType.TLS: TlsProbe(),
    MonitorType.HEARTBEAT: HeartbeatProbe(),
    MonitorType.PROMETHEUS: PrometheusProbe(),
    MonitorType.MACHINE: MachineProbe(),
    MonitorType.VITALS: VitalsProbe(),
}


def describe_error(exc: BaseException, monitor: MonitorSpec) -> str:
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
        return f"timed out after {monitor.timeout:g}s"
    if isinstance(exc, httpx.ConnectError | ConnectionError | ConnectError):
        return f"cannot connect: {exc or type(exc).__name__}"
    if isinstance(exc, ProtocolError):
        return f"bad HTTP response: {exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, MonitorError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


async def check(monitor: MonitorSpec, env: ProbeEnv) -> CheckOutcome:
    """Run one check of ``monitor`` and judge it; never raises for a failing target."""
    at = env.now()
    started = time.perf_counter()
    try:
        context = await PROBES[monitor.type].observe(monitor, env)
    except Exception as exc:
        return judge(
            monitor,
            {},
            at=at,
            latency=time.perf_counter() - started,
            error=describe_error(exc, monitor),
        )
    latency = float(context.get("latency", time.perf_counter() - started))
    return judge(monitor, context, at=at, latency=latency)
