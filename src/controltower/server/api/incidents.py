"""``/api/v1/incidents``: incidents with their timeline; acknowledge and resolve."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.exceptions import MonitorError
from controltower.monitor import incidents
from controltower.server.api.common import (
    ApiError,
    choice_param,
    context,
    in_thread,
    int_param,
    iso,
    json_body,
    optional_id,
    page,
    path_id,
    requires,
)
from controltower.server.tokens import TokenInfo
from controltower.store import Store
from controltower.store.models.monitor import Incident, IncidentEvent

STATUSES = ("open", *incidents.OPEN, incidents.RESOLVED)


def incident_json(row: Incident, timeline: list[IncidentEvent]) -> dict[str, Any]:
    return {
        "id": row.id,
        "service_id": row.service_id,
        "title": row.title,
        "status": row.status,
        "severity": row.severity,
        "monitors": list(row.monitors),
        "labels": dict(row.labels),
        "started_at": iso(row.started_at),
        "firing_at": iso(row.firing_at),
        "acknowledged_at": iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": iso(row.resolved_at),
        "resolved_by": row.resolved_by,
        "notified": row.notified_at is not None,
        "escalated": row.escalated_at is not None,
        "timeline": [
            {"at": iso(e.at), "kind": e.kind, "actor": e.actor, "message": e.message}
            for e in timeline
        ],
    }


def _with_timelines(session: Session, rows: Sequence[Incident]) -> list[dict[str, Any]]:
    events: dict[int, list[IncidentEvent]] = defaultdict(list)
    if rows:
        for event in session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id.in_([row.id for row in rows]))
            .order_by(IncidentEvent.at, IncidentEvent.id)
        ):
            events[event.incident_id].append(event)
    return [incident_json(row, events[row.id]) for row in rows]


def _list(
    store: Store, service_id: int | None, status: str | None, limit: int, before: int | None
) -> list[dict[str, Any]]:
    query = select(Incident)
    if service_id is not None:
        query = query.where(Incident.service_id == service_id)
    if status == "open":
        query = query.where(Incident.status.in_(incidents.OPEN))
    elif status:
        query = query.where(Incident.status == status)
    if before is not None:
        query = query.where(Incident.id < before)
    with store.session() as session:
        rows = session.scalars(query.order_by(Incident.id.desc()).limit(limit + 1)).all()
        return _with_timelines(session, rows)


def _get(store: Store, incident_id: int) -> dict[str, Any] | None:
    with store.session() as session:
        row = session.get(Incident, incident_id)
        return _with_timelines(session, [row])[0] if row else None


@requires("read")
async def list_incidents(request: Request, token: TokenInfo) -> Response:
    limit = int_param(request, "limit", 50, low=1, high=500)
    items = await in_thread(
        _list,
        context(request).store,
        optional_id(request, "service_id"),
        choice_param(request, "status", STATUSES),
        limit,
        optional_id(request, "before"),
    )
    return JSONResponse(page(items, limit))


async def _found(request: Request) -> int:
    incident_id = path_id(request, "incident_id", "incident")
    if await in_thread(_get, context(request).store, incident_id) is None:
        raise ApiError(404, "not_found", f"there is no incident {incident_id}")
    return incident_id


@requires("read")
async def get_incident(request: Request, token: TokenInfo) -> Response:
    incident_id = await _found(request)
    return JSONResponse(await in_thread(_get, context(request).store, incident_id))


def _act(action: str) -> Route:
    @requires("write")
    async def act(request: Request, token: TokenInfo) -> Response:
        incident_id = await _found(request)
        reason = ""
        if action == "resolve" and await request.body():
            value = (await json_body(request)).get("reason", "")
            if not isinstance(value, str):
                raise ApiError(400, "invalid_body", "reason must be a string")
            reason = value[:2000]
        store = context(request).store
        actor = f"token:{token.name}"
        try:
            if action == "ack":
                await in_thread(lambda: incidents.acknowledge(store, incident_id, actor))
            else:
                await in_thread(lambda: incidents.resolve(store, incident_id, actor, reason=reason))
        except MonitorError as exc:
            raise ApiError(409, "conflict", exc.message) from None
        return JSONResponse(await in_thread(_get, store, incident_id))

    return Route(f"/api/v1/incidents/{{incident_id:int}}/{action}", act, methods=["POST"])


routes = [
    Route("/api/v1/incidents", list_incidents, methods=["GET"]),
    Route("/api/v1/incidents/{incident_id:int}", get_incident, methods=["GET"]),
    _act("ack"),
    _act("resolve"),
]
