"""``/api/v1/readiness``: `tower check` runs (scores, gates) and their findings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.checks.history import findings_of
from controltower.server.api.common import (
    ApiError,
    context,
    in_thread,
    int_param,
    iso,
    optional_id,
    requires,
)
from controltower.server.tokens import TokenInfo
from controltower.store import Store
from controltower.store.models.checks import CheckRunRow, RunKind


def run_json(row: CheckRunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "service_id": row.service_id,
        "service": row.service,
        "environment": row.environment,
        "target": row.target,
        "url": row.url,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "overall": row.overall,
        "categories": row.categories,
        "gates": row.gates,
        "passed": row.passed,
        "counts": row.counts,
        "kind": row.kind,
    }


def _list(store: Store, service_id: int | None, limit: int) -> list[dict[str, Any]]:
    query = select(CheckRunRow).where(CheckRunRow.kind == RunKind.READINESS.value)
    if service_id is not None:
        query = query.where(CheckRunRow.service_id == service_id)
    with store.session() as session:
        rows = session.scalars(query.order_by(CheckRunRow.started_at.desc()).limit(limit))
        return [run_json(row) for row in rows]


def _get(store: Store, run_id: str) -> dict[str, Any] | None:
    with store.session() as session:
        row = session.get(CheckRunRow, run_id)
        found = run_json(row) if row is not None else None
    if found is not None:
        found["findings"] = findings_of(store, run_id)
    return found


@requires("read")
async def list_runs(request: Request, token: TokenInfo) -> Response:
    items = await in_thread(
        _list,
        context(request).store,
        optional_id(request, "service_id"),
        int_param(request, "limit", 50, low=1, high=500),
    )
    return JSONResponse({"items": items})


@requires("read")
async def get_run(request: Request, token: TokenInfo) -> Response:
    run_id: str = request.path_params["run_id"]
    found = None
    if len(run_id) <= 32 and "\x00" not in run_id:
        found = await in_thread(_get, context(request).store, run_id)
    if found is None:
        raise ApiError(404, "not_found", f"there is no readiness run {run_id}")
    return JSONResponse(found)


routes = [
    Route("/api/v1/readiness", list_runs, methods=["GET"]),
    Route("/api/v1/readiness/{run_id}", get_run, methods=["GET"]),
]
