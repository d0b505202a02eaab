"""``/api/v1/vitals``: p75 web vitals per page and release over a window."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.ingest.vitals import summarize
from controltower.server.api.common import ApiError, choice_param, context, in_thread, requires
from controltower.server.tokens import TokenInfo
from controltower.units import parse_duration

MAX_WINDOW = 366 * 86400.0
_BY = {"page": ("page",), "release": ("release",), "both": ("page", "release"), "none": ()}


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and "\x00" in value:
        raise ApiError(400, "invalid_parameter", f"{name} must not contain NUL characters")
    return value


@requires("read")
async def vitals(request: Request, token: TokenInfo) -> Response:
    raw = request.query_params.get("window") or "24h"
    try:
        window = parse_duration(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", 'window is a duration such as "24h"') from None
    if not 0 < window <= MAX_WINDOW:
        raise ApiError(400, "invalid_parameter", "window must be positive and at most 366 days")
    by = _BY[choice_param(request, "by", tuple(_BY)) or "both"]
    tower = context(request)
    project, release, page = (
        _text(request, "project"),
        _text(request, "release"),
        _text(request, "page"),
    )
    since = tower.clock.now() - timedelta(seconds=window)
    groups = await in_thread(
        lambda: summarize(
            tower.store,
            since=since,
            project=project or None,
            release=release,
            page=page,
            by=by,
        )
    )
    return JSONResponse(
        {"window": window, "since": since.isoformat(), "items": [g.as_dict() for g in groups]}
    )


routes = [Route("/api/v1/vitals", vitals, methods=["GET"])]
