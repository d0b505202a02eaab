"""``/api/v1/issues`` and ``/api/v1/events``: error groups, their events and states."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.ingest import issues
from controltower.server.api.common import (
    MAX_ID,
    ApiError,
    choice_param,
    context,
    in_thread,
    int_param,
    page,
    requires,
)
from controltower.server.tokens import TokenInfo

_EVENT_ID = re.compile(r"^[0-9a-fA-F]{32}$|^[0-9a-fA-F-]{36}$")


def _before(request: Request) -> int | None:
    raw = request.query_params.get("before")
    return None if not raw else int_param(request, "before", 0, low=1, high=MAX_ID)


@requires("read")
async def list_issues(request: Request, token: TokenInfo) -> Response:
    limit = int_param(request, "limit", 50, low=1, high=500)
    items = await in_thread(
        lambda: issues.list_issues(
            context(request).store,
            project=request.query_params.get("project") or None,
            status=choice_param(request, "status", issues.STATUSES),
            limit=limit,
            before=_before(request),
        )
    )
    return JSONResponse(page(items, limit))


async def _issue_or_404(request: Request) -> int:
    issue_id: int = request.path_params["issue_id"]
    if (
        issue_id > MAX_ID
        or await in_thread(issues.get_issue, context(request).store, issue_id) is None
    ):
        raise ApiError(404, "not_found", f"there is no error issue {issue_id}")
    return issue_id


@requires("read")
async def get_issue(request: Request, token: TokenInfo) -> Response:
    issue_id = await _issue_or_404(request)
    found = await in_thread(issues.get_issue, context(request).store, issue_id)
    found["hours"] = await in_thread(issues.hourly_counts, context(request).store, issue_id)
    return JSONResponse(found)


def _action(action: str) -> Route:
    @requires("write")
    async def act(request: Request, token: TokenInfo) -> Response:
        issue_id = await _issue_or_404(request)
        updated = await in_thread(
            lambda: issues.set_status(
                context(request).store, issue_id, action, actor=f"token:{token.name}"
            )
        )
        return JSONResponse(updated)

    return Route(f"/api/v1/issues/{{issue_id:int}}/{action}", act, methods=["POST"])


@requires("read")
async def issue_events(request: Request, token: TokenInfo) -> Response:
    issue_id = await _issue_or_404(request)
    limit = int_param(request, "limit", 50, low=1, high=500)
    before = _before(request)
    items = await in_thread(
        lambda: issues.list_events(context(request).store, issue_id, limit=limit, before=before)
    )
    return JSONResponse(page(items, limit))


@requires("read")
async def issue_hours(request: Request, token: TokenInfo) -> Response:
    issue_id = await _issue_or_404(request)
    hours = int_param(request, "hours", 24, low=1, high=24 * 90)
    items = await in_thread(
        lambda: issues.hourly_counts(context(request).store, issue_id, hours=hours)
    )
    return JSONResponse({"items": items})


@requires("read")
async def get_event(request: Request, token: TokenInfo) -> Response:
    event_id: str = request.path_params["event_id"]
    if not _EVENT_ID.match(event_id):
        raise ApiError(404, "not_found", f"there is no event {event_id}")
    found = await in_thread(issues.get_event, context(request).store, event_id)
    if found is None:
        raise ApiError(404, "not_found", f"there is no event {event_id}")
    return JSONResponse(found)


routes = [
    Route("/api/v1/issues", list_issues, methods=["GET"]),
    Route("/api/v1/issues/{issue_id:int}", get_issue, methods=["GET"]),
    Route("/api/v1/issues/{issue_id:int}/events", issue_events, methods=["GET"]),
    Route("/api/v1/issues/{issue_id:int}/hours", issue_hours, methods=["GET"]),
    *(_action(action) for action in issues.ACTIONS),
    Route("/api/v1/events/{event_id}", get_event, methods=["GET"]),
]
