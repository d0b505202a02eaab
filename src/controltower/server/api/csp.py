"""``/api/v1/csp``: CSP violations grouped by directive and blocked URI."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.ingest.issues import list_csp
from controltower.server.api.common import context, in_thread, int_param, requires
from controltower.server.tokens import TokenInfo


@requires("read")
async def csp_reports(request: Request, token: TokenInfo) -> Response:
    limit = int_param(request, "limit", 100, low=1, high=1000)
    project = request.query_params.get("project") or None
    items = await in_thread(lambda: list_csp(context(request).store, project=project, limit=limit))
    return JSONResponse({"items": items})


routes = [Route("/api/v1/csp", csp_reports, methods=["GET"])]
