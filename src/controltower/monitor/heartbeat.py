"""Heartbeat monitors: cron jobs and backups ping a URL; a missing ping is a failure.

``GET|POST /ping/<monitor>`` records a good ping, ``/ping/<monitor>/fail`` a
failed run. ``tower monitor`` serves these on ``--listen``; ``tower serve``
mounts the same routes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from controltower.clock import system_clock
from controltower.exceptions import MonitorError
from controltower.monitor.registry import sync_monitors
from controltower.spec import Spec
from controltower.spec.monitors import MonitorType
from controltower.store import Store
from controltower.store.models.monitor import MonitorState
from controltower.typing import Clock


def record_ping(
    store: Store,
    monitor_name: str,
    *,
    status: str = "up",
    clock: Clock = system_clock,
    service: int | None = None,
) -> datetime:
    """Record a ping of heartbeat monitor ``monitor_name``; return when it was recorded."""
    if status not in ("up", "fail"):
        raise MonitorError(f"a ping is up or fail, not {status!r}")
    now = clock.now()
    with store.session() as session:
        query = update(MonitorState).where(MonitorState.name == monitor_name)
        if service is not None:
            query = query.where(MonitorState.service_id == service)
        result = session.execute(query.values(last_ping_at=now, last_ping_status=status))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise MonitorError(
                f"no heartbeat monitor named {monitor_name!r}",
                hint='declare it in tower.toml: [[monitors]] type = "heartbeat"',
            )
    return now


def last_ping(store: Store, monitor_id: int) -> tuple[datetime | None, str, datetime | None]:
    """(last ping time, its status, when the monitor was created) of one monitor."""
    with store.session() as session:
        row = session.execute(
            select(
                MonitorState.last_ping_at, MonitorState.last_ping_status, MonitorState.created_at
            ).where(MonitorState.id == monitor_id)
        ).one()
        return row[0], row[1], row[2]


def heartbeat_routes(store: Store, spec: Spec, *, clock: Clock = system_clock) -> list[Route]:
    """Routes ``/ping/{monitor}`` and ``/ping/{monitor}/fail`` for the spec's heartbeats."""
    service, ids = sync_monitors(store, spec)
    names = {m.name for m in spec.monitors if m.type is MonitorType.HEARTBEAT and m.name in ids}

    async def ping(request: Request) -> JSONResponse:
        import asyncio

        name = request.path_params["monitor"]
        status = "fail" if request.url.path.rstrip("/").endswith("/fail") else "up"
        if name not in names:
            return JSONResponse(
                {"ok": False, "error": f"no heartbeat monitor named {name!r}"}, status_code=404
            )
        at = await asyncio.to_thread(
            record_ping, store, name, status=status, clock=clock, service=service
        )
        return JSONResponse({"ok": True, "monitor": name, "status": status, "at": at.isoformat()})

    return [
        Route("/ping/{monitor}", ping, methods=["GET", "POST", "HEAD"]),
        Route("/ping/{monitor}/fail", ping, methods=["GET", "POST", "HEAD"]),
    ]
