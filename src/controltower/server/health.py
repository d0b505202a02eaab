"""The server's own health and metrics: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower import __version__
from controltower.server.api.common import context
from controltower.store import Store


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "pass", "version": __version__})


def _ping(store: Store) -> None:
    with store.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def readyz(request: Request) -> Response:
    """Readiness: the store answers and the ingest buffer has room."""
    tower = context(request)
    checks: dict[str, dict[str, object]] = {}
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping, tower.store), 5.0)
        checks["store"] = {"status": "pass"}
    except Exception as exc:
        checks["store"] = {"status": "fail", "output": type(exc).__name__}
    if tower.ingestion is not None:
        buffer = tower.ingestion.buffer
        full = buffer.free == 0
        checks["ingest_buffer"] = {
            "status": "fail" if full else "pass",
            "observed": len(buffer),
            "capacity": buffer.capacity,
        }
    runner = getattr(request.app.state, "runner", None)
    services = runner.running if runner is not None else []
    ok = all(check["status"] == "pass" for check in checks.values())
    return JSONResponse(
        {"status": "pass" if ok else "fail", "checks": checks, "services": services},
        status_code=200 if ok else 503,
    )


async def metrics(request: Request) -> Response:
    tower = context(request)
    if tower.ingestion is not None:
        figures = tower.ingestion.ledger.snapshot()
        tower.ingestion.metrics.buffered.set(figures["buffered"])
        tower.ingestion.metrics.unaccounted.set(figures["unaccounted"])
    return Response(generate_latest(tower.registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
