"""The dashboard and the public status page, as Starlette routes.

Pages are server-rendered Jinja2 and work without JavaScript. Everything but
``/status``, ``/badge/...``, ``/login`` and the stylesheet needs a logged-in
user; every POST carries the session's CSRF token and must come from this
origin.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from controltower.clock import system_clock
from controltower.dashboard import data
from controltower.dashboard.auth import (
    Accounts,
    HashingBusy,
    HashingPool,
    LoginThrottle,
    SessionInfo,
    csrf_ok,
    throttle_keys,
)
from controltower.dashboard.svg import badge
from controltower.store import Store
from controltower.typing import Clock

COOKIE = "tower_session"
LOGIN_COOKIE = "tower_login_csrf"
HERE = Path(__file__).parent
# Pages load nothing but their own stylesheet: no script runs, no other site frames them.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def _percent(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.2f}%" if value < 0.9999 else "100%"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


class Dashboard:
    """Routes of the dashboard over one store. ``title`` names the status page."""

    def __init__(
        self,
        store: Store,
        *,
        title: str = "tower",
        clock: Clock = system_clock,
        secure_cookies: bool = False,
    ) -> None:
        self.store = store
        self.title = title
        self.clock = clock
        self.secure = secure_cookies
        self.accounts = Accounts(store, clock=clock)
        self.throttle = LoginThrottle(store, clock=clock)
        self.hashing = HashingPool()
        # The login form's store work (nonces, failure counts) on its own thread,
        # not the shared pool the API and ingestion wait on: a flood of logins
        # queues here, and past LOGIN_PENDING waiting it is answered 429 at once.
        self.login_io = HashingPool(workers=1, max_pending=LOGIN_PENDING)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self.templates.filters["percent"] = _percent
        self.templates.filters["when"] = _when
        self.templates.filters["ago"] = self._ago

    def _ago(self, value: datetime | None) -> str:
        if value is None:
            return "-"
        seconds = (self.clock.now() - value).total_seconds()
        for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
            if seconds >= size:
                return f"{int(seconds // size)}{unit} ago"
        return f"{max(0, int(seconds))}s ago"

    def routes(self) -> list[BaseRoute]:
        pages: list[tuple[str, Any, list[str]]] = [
            ("/", self.overview, ["GET"]),
            ("/login", self.login, ["GET", "POST"]),
            ("/logout", self.logout, ["POST"]),
            ("/services/{name}", self.service, ["GET"]),
            ("/incidents", self.incidents, ["GET"]),
            ("/incidents/{id:int}/{action}", self.incident_action, ["POST"]),
            ("/deploys", self.deploys, ["GET"]),
            ("/deploys/{id}", self.release, ["GET"]),
            ("/errors", self.errors, ["GET"]),
            ("/errors/{id:int}", self.error, ["GET"]),
            ("/errors/{id:int}/resolve", self.error_resolve, ["POST"]),
            ("/readiness", self.readiness, ["GET"]),
            ("/status", self.status, ["GET"]),
            ("/badge/{service}/{kind}.svg", self.badge, ["GET"]),
        ]
        routes: list[BaseRoute] = [
            Route(path, endpoint, methods=methods, include_in_schema=False)
            for path, endpoint, methods in pages
        ]
        routes.append(
            Mount("/static", StaticFiles(directory=HERE / "static"), name="dashboard_static")
        )
        return routes

    # rendering and auth

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        page = self.templates.get_template(template)
        html = page.render(
            url_for=request.url_for, now=self.clock.now(), title=self.title, **context
        )
        response = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
        response.headers["cache-control"] = "no-store"
        return response

    async def who(self, request: Request) -> SessionInfo | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        return await asyncio.to_thread(self.accounts.session, token)

    def need_login(self, request: Request) -> Response:
        target = request.url.path
        return RedirectResponse(f"/login?next={target}", status_code=303)

    async def checked_post(self, request: Request) -> tuple[SessionInfo | None, dict[str, str]]:
        """The session of a POST whose CSRF token and origin check out, and its form."""
        info = await self.who(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        if info is None or not csrf_ok(info.csrf_token, form.get("csrf")):
            return None, form
        if not self._same_origin(request):
            return None, form
        return info, form

    @staticmethod
    def _same_origin(request: Request) -> bool:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin:
            return True
        return urlsplit(origin).netloc == request.headers.get("host", "")

    async def login(self, request: Request) -> Response:
        next_path = _local(request.query_params.get("next") or "/")
        if request.method == "GET":
            return await self._login_form(request, next_path, "", 200)
        form = {k: str(v) for k, v in (await request.form()).items()}
        next_path = _local(form.get("next", "/"))
        nonce = form.get("csrf", "")
        if not self._same_origin(request) or not csrf_ok(
            request.cookies.get(LOGIN_COOKIE, ""), nonce
        ):
            return Response("the login form expired; reload the page", status_code=403)
        try:
            spent = await self.login_io.run(self.throttle.spend_nonce, nonce)
        except HashingBusy:
            return _busy()
        if not spent:
            return Response("the login form expired; reload the page", status_code=403)
        name = form.get("name", "")
        keys = throttle_keys(name, request.client.host if request.client else "-")
        try:
            wait = await self.login_io.run(self.throttle.wait, keys)
        except HashingBusy:
            return _busy()
        if wait > 0:
            return await self._locked(request, next_path, wait)
        try:
            session_token = await self.hashing.run(
                self.accounts.login, name, form.get("password", "")
            )
        except HashingBusy:
            return await self._login_form(
                request, next_path, "The server is busy with other logins; try again.", 429, 1
            )
        if session_token is None:
            # Counted even when the pool is full: a failure must never go uncounted.
            locked = await asyncio.to_thread(self.throttle.failed, keys)
            if locked > 0:
                return await self._locked(request, next_path, locked)
            return await self._login_form(request, next_path, "Wrong name or password.", 401)
        await asyncio.to_thread(self.throttle.succeeded, keys)
        redirect = RedirectResponse(next_path, status_code=303)
        redirect.set_cookie(
            COOKIE,
            session_token,
            httponly=True,
            samesite="lax",
            secure=self.secure,
            max_age=12 * 3600,
        )
        redirect.delete_cookie(LOGIN_COOKIE)
        return redirect

    async def _locked(self, request: Request, next_path: str, seconds: float) -> Response:
        wait = max(1, math.ceil(seconds))
        message = (
            f"Too many failed logins for this account or from this address: "
            f"locked for {wait} s. Try again after that."
        )
        return await self._login_form(request, next_path, message, 429, wait)

    async def _login_form(
        self, request: Request, next_path: str, error: str, status: int, retry: int = 0
    ) -> Response:
        """The login page with a fresh server-issued nonce, in the form and in a cookie."""
        try:
            nonce = await self.login_io.run(self.throttle.issue_nonce)
        except HashingBusy:
            return _busy()
        response = self.render(
            request,
            "login.html",
            status_code=status,
            login_csrf=nonce,
            next=next_path,
            error=error,
            user=None,
        )
        if retry:
            response.headers["retry-after"] = str(retry)
        response.set_cookie(
            LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=self.secure
        )
        return response

    async def logout(self, request: Request) -> Response:
        info, _ = await self.checked_post(request)
        if info is None:
            return Response("forbidden", status_code=403)
        await asyncio.to_thread(self.accounts.logout, request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # pages

    async def overview(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        view = await asyncio.to_thread(data.overview, self.store, now=self.clock.now())
        return self.render(
            request,
            "overview.html",
            user=info.user,
            csrf=info.csrf_token,
            active="Overview",
            **view,
        )

    async def service(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        view = await asyncio.to_thread(
            data.service_page, self.store, request.path_params["name"], now=self.clock.now()
        )
        if view is None:
            return self.render(
                request, "base.html", status_code=404, user=info.user, csrf=info.csrf_token
            )
        return self.render(
            request, "service.html", user=info.user, csrf=info.csrf_token, active="Overview", **view
        )

    async def incidents(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        return self.render(
            request,
            "incidents.html",
            user=info.user,
            csrf=info.csrf_token,
            active="Incidents",
            incidents=await asyncio.to_thread(data.incidents, self.store),
        )

    async def incident_action(self, request: Request) -> Response:
        info, _ = await self.checked_post(request)
        if info is None:
            return Response("forbidden: log in again", status_code=403)
        action = request.path_params["action"]
        if action not in ("ack", "resolve"):
            return Response("unknown action", status_code=404)
        await asyncio.to_thread(
            data.act_on_incident, self.store, request.path_params["id"], action, actor=info.user
        )
        return RedirectResponse(f"/incidents#incident-{request.path_params['id']}", status_code=303)

    async def deploys(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        return self.render(
            request,
            "deploys.html",
            user=info.user,
            csrf=info.csrf_token,
            active="Deploys",
            **await asyncio.to_thread(data.deploys, self.store, now=self.clock.now()),
        )

    async def release(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        view = await asyncio.to_thread(data.release, self.store, request.path_params["id"])
        if view is None:
            return Response("no such release", status_code=404)
        return self.render(
            request, "release.html", user=info.user, csrf=info.csrf_token, active="Deploys", **view
        )

    async def errors(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        return self.render(
            request,
            "errors.html",
            user=info.user,
            csrf=info.csrf_token,
            active="Errors",
            **await asyncio.to_thread(data.errors, self.store, now=self.clock.now()),
        )

    async def error(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        view = await asyncio.to_thread(
            data.error, self.store, request.path_params["id"], now=self.clock.now()
        )
        if view is None:
            return Response("no such issue", status_code=404)
        return self.render(
            request, "error.html", user=info.user, csrf=info.csrf_token, active="Errors", **view
        )

    async def error_resolve(self, request: Request) -> Response:
        info, _ = await self.checked_post(request)
        if info is None:
            return Response("forbidden: log in again", status_code=403)
        await asyncio.to_thread(
            data.resolve_error, self.store, request.path_params["id"], now=self.clock.now()
        )
        return RedirectResponse(f"/errors/{request.path_params['id']}", status_code=303)

    async def readiness(self, request: Request) -> Response:
        info = await self.who(request)
        if info is None:
            return self.need_login(request)
        return self.render(
            request,
            "readiness.html",
            user=info.user,
            csrf=info.csrf_token,
            active="Readiness",
            **await asyncio.to_thread(data.readiness, self.store),
        )

    async def status(self, request: Request) -> Response:
        view = await asyncio.to_thread(data.status_page, self.store, now=self.clock.now())
        response = self.render(request, "status.html", **view)
        response.headers["cache-control"] = "public, max-age=30"
        return response

    async def badge(self, request: Request) -> Response:
        service, kind = request.path_params["service"], request.path_params["kind"]
        found = await asyncio.to_thread(
            data.service_summary, self.store, service, now=self.clock.now()
        )
        if kind == "uptime":
            value = found.uptime_30d if found else None
            colour = (
                "grey"
                if value is None
                else ("green" if value >= 0.999 else "yellow" if value >= 0.99 else "red")
            )
            svg = badge("uptime 30d", _percent(value), colour)
        elif kind == "status":
            status = found.status if found else "unknown"
            colour = {"up": "green", "degraded": "yellow", "down": "red"}.get(status, "grey")
            svg = badge(service, status, colour)
        else:
            return Response("badge kinds: status, uptime", status_code=404)
        return Response(
            svg, media_type="image/svg+xml", headers={"cache-control": "public, max-age=60"}
        )


def _local(target: str) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirects)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


LOGIN_PENDING = 64


def _busy() -> Response:
    """What a login gets while more than LOGIN_PENDING others wait for the store."""
    return Response(
        "the server is busy with other logins; try again in a second",
        status_code=429,
        headers={"retry-after": "1"},
    )
