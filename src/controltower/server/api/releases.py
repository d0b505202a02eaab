"""``/api/v1/releases``: deploys and rollbacks with their step logs; ``/api/v1/dora``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.deploy.views import dora_figures, view
from controltower.server.api.common import (
    ApiError,
    context,
    in_thread,
    int_param,
    optional_id,
    requires,
)
from controltower.server.tokens import TokenInfo
from controltower.store import Store
from controltower.store.models.core import Service
from controltower.store.models.deploy import Release, ReleaseStep

STATUSES = ("pending", "running", "rolling_back", "succeeded", "rolled_back", "failed")


def _release_json(
    row: Release, service: Service, steps: list[ReleaseStep] | None
) -> dict[str, Any]:
    data = view(row, steps).to_dict(steps=steps is not None)
    return {**data, "service_id": service.id, "service": service.name}


def _list(
    store: Store, service_id: int | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    query = select(Release, Service).join(Service, Service.id == Release.service_id)
    if service_id is not None:
        query = query.where(Release.service_id == service_id)
    if status:
        query = query.where(Release.status == status)
    query = query.order_by(Release.created_at.desc(), Release.id.desc()).limit(limit)
    with store.session() as session:
        return [_release_json(row, service, None) for row, service in session.execute(query)]


def _get(store: Store, release_id: str) -> dict[str, Any] | None:
    with store.session() as session:
        found = session.execute(
            select(Release, Service)
            .join(Service, Service.id == Release.service_id)
            .where(Release.id == release_id)
        ).first()
        if found is None:
            return None
        steps = session.scalars(
            select(ReleaseStep).where(ReleaseStep.release_id == release_id).order_by(ReleaseStep.id)
        ).all()
        return _release_json(found[0], found[1], list(steps))


@requires("read")
async def list_releases(request: Request, token: TokenInfo) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise ApiError(400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}")
    items = await in_thread(
        _list,
        context(request).store,
        optional_id(request, "service_id"),
        status,
        int_param(request, "limit", 50, low=1, high=500),
    )
    return JSONResponse({"items": items})


@requires("read")
async def get_release(request: Request, token: TokenInfo) -> Response:
    release_id: str = request.path_params["release_id"]
    found = None
    if len(release_id) <= 40 and "\x00" not in release_id:
        found = await in_thread(_get, context(request).store, release_id)
    if found is None:
        raise ApiError(404, "not_found", f"there is no release {release_id}")
    return JSONResponse(found)


def _dora(store: Store, service_id: int | None, days: int, now: Any) -> dict[str, Any]:
    return dora_figures(store, service_id, now=now, days=float(days)).to_dict()


@requires("read")
async def get_dora(request: Request, token: TokenInfo) -> Response:
    tower = context(request)
    figures = await in_thread(
        _dora,
        tower.store,
        optional_id(request, "service_id"),
        int_param(request, "days", 30, low=1, high=365),
        tower.clock.now(),
    )
    return JSONResponse(figures)


routes = [
    Route("/api/v1/releases", list_releases, methods=["GET"]),
    Route("/api/v1/releases/{release_id}", get_release, methods=["GET"]),
    Route("/api/v1/dora", get_dora, methods=["GET"]),
]
