"""``/api/v1/monitors``: monitors with their state and uptime, raw results and rollups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.monitor.results import uptime
from controltower.server.api.common import (
    ApiError,
    choice_param,
    context,
    in_thread,
    int_param,
    iso,
    optional_id,
    page,
    path_id,
    requires,
)
from controltower.server.tokens import TokenInfo
from controltower.store import Store
from controltower.store.models.core import Service
from controltower.store.models.monitor import MonitorResult, MonitorRollup, MonitorState

BUCKETS = ("minute", "hour", "day")


def _monitor_json(
    state: MonitorState, service: Service, now: datetime, session: Session
) -> dict[str, Any]:
    figures = uptime(session, state.id, state.name, now)
    return {
        "id": state.id,
        "service_id": service.id,
        "service": service.name,
        "environment": service.environment,
        "name": state.name,
        "type": state.type,
        "level": state.level,
        "alert_status": state.alert_status,
        "incident_id": state.incident_id,
        "consecutive_failures": state.consecutive_failures,
        "last_check_at": iso(state.last_check_at),
        "last_message": state.last_message,
        "uptime": figures.windows,
        "avg_latency_ms_24h": figures.avg_latency_ms_24h,
    }


def _monitors(
    store: Store, now: datetime, service_id: int | None, monitor_id: int | None = None
) -> list[dict[str, Any]]:
    query = select(MonitorState, Service).join(Service, Service.id == MonitorState.service_id)
    if service_id is not None:
        query = query.where(Service.id == service_id)
    if monitor_id is not None:
        query = query.where(MonitorState.id == monitor_id)
    with store.session() as session:
        rows = session.execute(query.order_by(Service.name, MonitorState.name)).all()
        return [_monitor_json(state, service, now, session) for state, service in rows]


async def _one(request: Request) -> dict[str, Any]:
    monitor_id = path_id(request, "monitor_id", "monitor")
    tower = context(request)
    found = await in_thread(_monitors, tower.store, tower.clock.now(), None, monitor_id)
    if not found:
        raise ApiError(404, "not_found", f"there is no monitor {monitor_id}")
    item: dict[str, Any] = found[0]
    return item


@requires("read")
async def list_monitors(request: Request, token: TokenInfo) -> Response:
    service_id = optional_id(request, "service_id")
    tower = context(request)
    items = await in_thread(_monitors, tower.store, tower.clock.now(), service_id)
    return JSONResponse({"items": items})


@requires("read")
async def get_monitor(request: Request, token: TokenInfo) -> Response:
    return JSONResponse(await _one(request))


def _results(store: Store, monitor_id: int, limit: int, before: int | None) -> list[dict[str, Any]]:
    query = select(MonitorResult).where(MonitorResult.monitor_id == monitor_id)
    if before is not None:
        query = query.where(MonitorResult.id < before)
    with store.session() as session:
        return [
            {
                "id": row.id,
                "at": iso(row.at),
                "ok": row.ok,
                "level": row.level,
                "latency_ms": row.latency_ms,
                "message": row.message,
            }
            for row in session.scalars(query.order_by(MonitorResult.id.desc()).limit(limit + 1))
        ]


@requires("read")
async def monitor_results(request: Request, token: TokenInfo) -> Response:
    monitor = await _one(request)
    limit = int_param(request, "limit", 100, low=1, high=1000)
    before = optional_id(request, "before")
    items = await in_thread(_results, context(request).store, monitor["id"], limit, before)
    return JSONResponse(page(items, limit))


def _rollups(store: Store, monitor_id: int, bucket: str, limit: int) -> list[dict[str, Any]]:
    with store.session() as session:
        rows = session.scalars(
            select(MonitorRollup)
            .where(MonitorRollup.monitor_id == monitor_id, MonitorRollup.bucket == bucket)
            .order_by(MonitorRollup.start.desc())
            .limit(limit)
        ).all()
        return [
            {
                "start": iso(row.start),
                "checks": row.checks,
                "failures": row.failures,
                "avg_latency_ms": row.latency_sum / row.checks if row.checks else None,
                "max_latency_ms": row.latency_max,
            }
            for row in reversed(rows)
        ]


@requires("read")
async def monitor_rollups(request: Request, token: TokenInfo) -> Response:
    monitor = await _one(request)
    bucket = choice_param(request, "bucket", BUCKETS) or "hour"
    limit = int_param(request, "limit", 24, low=1, high=2000)
    items = await in_thread(_rollups, context(request).store, monitor["id"], bucket, limit)
    return JSONResponse({"bucket": bucket, "items": items})


routes = [
    Route("/api/v1/monitors", list_monitors, methods=["GET"]),
    Route("/api/v1/monitors/{monitor_id:int}", get_monitor, methods=["GET"]),
    Route("/api/v1/monitors/{monitor_id:int}/results", monitor_results, methods=["GET"]),
    Route("/api/v1/monitors/{monitor_id:int}/rollups", monitor_rollups, methods=["GET"]),
]
