"""The Starlette application of ``tower serve``: API, ingestion, health, services.

``create_app(context)`` assembles the routes (health, OpenAPI, the JSON API one
module per resource, Sentry ingestion, pages) and a lifespan that starts the
background services (the ingest writer always, plus ``context.services`` and
registered factories) and stops them, flushing the ingest buffer, on shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from controltower.ingest import routes as ingest_routes
from controltower.ingest.writer import IngestWriter
from controltower.server import pages
from controltower.server.api import api_routes
from controltower.server.context import ServerContext
from controltower.server.health import routes as health_routes
from controltower.server.services import Service, ServiceRunner, registered_services

log = logging.getLogger("controltower.server")
OPENAPI = Path(__file__).with_name("openapi.yaml")


async def openapi(request: Request) -> Response:
    return Response(OPENAPI.read_bytes(), media_type="application/yaml")


def build_services(context: ServerContext) -> list[Service]:
    services: list[Service] = []
    if context.ingestion is not None:
        server = context.spec.server if context.spec is not None else None
        writer = IngestWriter(
            context.store,
            context.ingestion.buffer,
            context.rules,
            batch_size=server.batch_size if server else 500,
            flush_interval=server.flush_interval if server else 0.2,
            clock=context.clock,
            metrics=context.ingestion.metrics,
        )
        services.append(writer)
    for name, factory in registered_services().items():
        service = factory(context)
        if service is not None:
            log.info("starting service %s", name)
            services.append(service)
    services.extend(context.services)
    return services


def create_app(context: ServerContext) -> Starlette:
    from controltower.ingest.projects import load_projects

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if context.ingestion is not None:
            context.ingestion.set_projects(load_projects(context.store))
        timeout = context.spec.server.shutdown_timeout if context.spec else 20.0
        runner = ServiceRunner(build_services(context), shutdown_timeout=timeout)
        app.state.runner = runner
        await runner.start()
        try:
            yield
        finally:
            await runner.shutdown()

    routes: list[BaseRoute] = [
        *health_routes,
        Route("/api/openapi.yaml", openapi, methods=["GET"]),
        *api_routes(),
        *ingest_routes.routes,
        *pages.routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.tower = context
    app.state.ingestion = context.ingestion
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": {"code": "not_found", "message": f"nothing at {request.url.path}"}},
        status_code=404,
    )


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {
            "error": {
                "code": "method_not_allowed",
                "message": f"{request.method} is not allowed here",
            }
        },
        status_code=405,
    )
