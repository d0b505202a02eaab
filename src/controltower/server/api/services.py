"""``/api/v1/services``: the services tower knows, each with its environment."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.server.api.common import context, in_thread, iso, requires
from controltower.server.tokens import TokenInfo
from controltower.store import Store
from controltower.store.models.core import Service


def _services(store: Store) -> list[dict[str, Any]]:
    with store.session() as session:
        return [
            {
                "id": row.id,
                "name": row.name,
                "environment": row.environment,
                "created_at": iso(row.created_at),
            }
            for row in session.scalars(select(Service).order_by(Service.name, Service.environment))
        ]


@requires("read")
async def list_services(request: Request, token: TokenInfo) -> Response:
    items = await in_thread(_services, context(request).store)
    return JSONResponse({"items": items})


routes = [Route("/api/v1/services", list_services, methods=["GET"])]
