"""Tell a heartbeat monitor that a backup ran, so that a missed backup raises an incident.

``[backup] heartbeat`` is either a URL or the name of a heartbeat monitor of
the same tower.toml:

- a URL (healthchecks.io, Better Stack, Uptime Kuma's push monitors, or
  ``tower serve``'s own ``/ping/<monitor>``) gets a GET after every run:
  the URL itself when the backup is good, ``<url>/fail`` when it failed;
- a monitor name (``[[monitors]] type = "heartbeat"``) has the ping recorded
  straight into the store, where ``tower monitor`` and ``tower serve`` read it.

Either way the monitor goes down when pings stop arriving within its
``interval`` plus ``grace``, and the monitor's alert rules open the incident.
A ping never fails the backup: what went wrong is returned as text.
"""

from __future__ import annotations

import httpx

from controltower.clock import system_clock
from controltower.exceptions import TowerError
from controltower.spec import Spec
from controltower.spec.monitors import MonitorType
from controltower.store import Store
from controltower.typing import Clock


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def ping_url(url: str, *, ok: bool) -> str:
    return url if ok else url.rstrip("/") + "/fail"


def ping(
    target: str,
    *,
    ok: bool,
    spec: Spec | None = None,
    store: Store | None = None,
    clock: Clock = system_clock,
    timeout: float = 10.0,
) -> str:
    """Ping ``target``; return "" when the ping was taken, else what went wrong (never raises)."""
    if not target:
        return ""
    if is_url(target):
        return _ping_http(ping_url(target, ok=ok), timeout)
    if spec is None or store is None:
        return f"heartbeat monitor {target!r} needs the store to record its ping"
    return _ping_monitor(target, ok=ok, spec=spec, store=store, clock=clock)


def _ping_http(target: str, timeout: float) -> str:
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"heartbeat {target} failed: {exc}"
    if response.status_code >= 300:
        return f"heartbeat {target} answered {response.status_code}"
    return ""


def _ping_monitor(name: str, *, ok: bool, spec: Spec, store: Store, clock: Clock) -> str:
    from controltower.monitor.heartbeat import record_ping
    from controltower.monitor.registry import sync_monitors

    monitor = next((m for m in spec.monitors if m.name == name), None)
    if monitor is None or monitor.type is not MonitorType.HEARTBEAT or not monitor.enabled:
        heartbeats = [m.name for m in spec.monitors if m.type is MonitorType.HEARTBEAT]
        return (
            f"[backup] heartbeat {name!r} is not an enabled heartbeat monitor of this tower.toml "
            f"(heartbeat monitors: {', '.join(heartbeats) or 'none'})"
        )
    try:
        service, _ids = sync_monitors(store, spec)
        record_ping(store, name, status="up" if ok else "fail", clock=clock, service=service)
    except TowerError as exc:
        return f"heartbeat monitor {name!r}: {exc}"
    return ""
