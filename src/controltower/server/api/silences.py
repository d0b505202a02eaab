"""``/api/v1/silences``: list, add (matchers for a duration) and expire silences."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.exceptions import MonitorError, UsageError
from controltower.monitor.silences import SilenceView, add_silence, expire_silence
from controltower.server.api.common import (
    MAX_ID,
    ApiError,
    bool_param,
    context,
    in_thread,
    iso,
    json_body,
    optional_id,
    path_id,
    requires,
)
from controltower.server.tokens import TokenInfo
from controltower.store import Store
from controltower.store.models.core import Service
from controltower.store.models.monitor import Silence
from controltower.units import parse_duration

MAX_SECONDS = 366 * 86400.0


def silence_json(view: SilenceView, service_id: int) -> dict[str, Any]:
    return {
        "id": view.id,
        "service_id": service_id,
        "matchers": view.matchers,
        "starts_at": iso(view.starts_at),
        "ends_at": iso(view.ends_at),
        "created_by": view.created_by,
        "comment": view.comment,
        "active": view.active,
    }


def _list(store: Store, service_id: int | None, everything: bool, now: Any) -> list[dict[str, Any]]:
    query = select(Silence)
    if service_id is not None:
        query = query.where(Silence.service_id == service_id)
    if not everything:
        query = query.where(Silence.ends_at > now)
    with store.session() as session:
        return [
            {
                "id": row.id,
                "service_id": row.service_id,
                "matchers": {str(k): str(v) for k, v in row.matchers.items()},
                "starts_at": iso(row.starts_at),
                "ends_at": iso(row.ends_at),
                "created_by": row.created_by,
                "comment": row.comment,
                "active": row.starts_at <= now < row.ends_at,
            }
            for row in session.scalars(query.order_by(Silence.id.desc()).limit(1000))
        ]


@requires("read")
async def list_silences(request: Request, token: TokenInfo) -> Response:
    tower = context(request)
    items = await in_thread(
        _list,
        tower.store,
        optional_id(request, "service_id"),
        bool_param(request, "all"),
        tower.clock.now(),
    )
    return JSONResponse({"items": items})


def _service_exists(store: Store, service_id: int) -> bool:
    with store.session() as session:
        return session.scalar(select(Service.id).where(Service.id == service_id)) is not None


def _duration(value: object) -> float:
    if isinstance(value, bool):
        raise ApiError(400, "invalid_body", 'duration is seconds or text such as "2h"')
    try:
        seconds = float(value) if isinstance(value, int | float) else parse_duration(str(value))
    except (ValueError, TypeError):
        raise ApiError(400, "invalid_body", 'duration is seconds or text such as "2h"') from None
    if not 0 < seconds <= MAX_SECONDS:
        raise ApiError(400, "invalid_body", "duration must be positive and at most 366 days")
    return seconds


@requires("write")
async def create_silence(request: Request, token: TokenInfo) -> Response:
    body = await json_body(request)
    service_id = body.get("service_id")
    matchers = body.get("matchers")
    comment = body.get("comment", "")
    if not isinstance(service_id, int) or isinstance(service_id, bool):
        raise ApiError(400, "invalid_body", "service_id must be an integer (GET /api/v1/services)")
    if not isinstance(matchers, dict) or not matchers:
        raise ApiError(400, "invalid_body", 'matchers must be an object such as {"monitor": "api"}')
    if not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
        for k, v in matchers.items()
    ):
        raise ApiError(400, "invalid_body", "matchers must map non-empty names to non-empty text")
    if not isinstance(comment, str):
        raise ApiError(400, "invalid_body", "comment must be a string")
    seconds = _duration(body.get("duration", "1h"))
    store = context(request).store
    if not 0 < service_id <= MAX_ID or not await in_thread(_service_exists, store, service_id):
        raise ApiError(404, "not_found", f"there is no service {service_id}")
    try:
        view = await in_thread(
            lambda: add_silence(
                store,
                service_id,
                {k.strip(): v.strip() for k, v in matchers.items()},
                duration=seconds,
                actor=f"token:{token.name}",
                comment=comment[:2000],
                clock=context(request).clock,
            )
        )
    except UsageError as exc:
        raise ApiError(400, "invalid_body", exc.message) from None
    return JSONResponse(silence_json(view, service_id), status_code=201)


def _service_of(store: Store, silence_id: int) -> int | None:
    with store.session() as session:
        return session.scalar(select(Silence.service_id).where(Silence.id == silence_id))


@requires("write")
async def delete_silence(request: Request, token: TokenInfo) -> Response:
    silence_id = path_id(request, "silence_id", "silence")
    store = context(request).store
    service_id = await in_thread(_service_of, store, silence_id)
    if service_id is None:
        raise ApiError(404, "not_found", f"there is no silence {silence_id}")
    try:
        view = await in_thread(
            lambda: expire_silence(
                store, silence_id, actor=f"token:{token.name}", clock=context(request).clock
            )
        )
    except MonitorError as exc:
        raise ApiError(404, "not_found", exc.message) from None
    return JSONResponse(silence_json(view, service_id))


routes = [
    Route("/api/v1/silences", list_silences, methods=["GET"]),
    Route("/api/v1/silences", create_silence, methods=["POST"]),
    Route("/api/v1/silences/{silence_id:int}", delete_silence, methods=["DELETE"]),
]
