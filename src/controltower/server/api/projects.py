"""``/api/v1/projects``: error-tracking projects with their DSNs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.ingest.projects import dsn_for, load_projects
from controltower.server.api.common import context, in_thread, requires
from controltower.server.tokens import TokenInfo


def base_url(request: Request) -> str:
    spec = context(request).spec
    if spec is not None and spec.server.public_url:
        return spec.server.public_url
    return str(request.base_url).rstrip("/")


@requires("read")
async def list_projects(request: Request, token: TokenInfo) -> Response:
    projects = await in_thread(load_projects, context(request).store)
    base = base_url(request)
    items: list[dict[str, Any]] = [
        {
            "id": project.id,
            "name": project.name,
            "dsn": dsn_for(project, base),
            "rate_limit": project.rate_limit,
        }
        for project in projects
    ]
    return JSONResponse({"items": items})


routes = [Route("/api/v1/projects", list_projects, methods=["GET"])]
