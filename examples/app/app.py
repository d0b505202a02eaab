"""The example app that the demo and the tests deploy.

A small shop API on Starlette with a SQLite (or PostgreSQL) database. It can be
told through environment variables to misbehave the way a bad release does:

    APP_VERSION        version it reports (default "dev")
    APP_DATABASE       SQLite file path or postgresql:// URL (default: ./example.db)
    APP_FAIL_START=1   exit during startup
    APP_FAIL_HEALTH=1  readiness answers 503
    APP_ERROR_RATE     fraction of non-health requests answered with 500, e.g. 0.2
    APP_LATENCY_MS     latency added to every non-health request, e.g. 50
    APP_SEED           seed for the error and latency choices (tests)
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import time
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

VERSION = os.environ.get("APP_VERSION", "dev")
DATABASE = os.environ.get("APP_DATABASE", os.path.join(os.path.dirname(__file__), "example.db"))
ERROR_RATE = float(os.environ.get("APP_ERROR_RATE", "0") or 0)
LATENCY = float(os.environ.get("APP_LATENCY_MS", "0") or 0) / 1000.0
FAIL_HEALTH = os.environ.get("APP_FAIL_HEALTH", "") not in ("", "0", "false")
STARTED = time.time()
_random = random.Random(os.environ.get("APP_SEED"))

registry = CollectorRegistry()
REQUESTS = Counter(
    "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
)
LATENCY_SECONDS = Histogram(
    "http_request_duration_seconds", "Request latency", ["route"], registry=registry
)

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains; preload",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-resource-policy": "same-origin",
}


def _query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if DATABASE.startswith(("postgres://", "postgresql://")):
        import psycopg

        with psycopg.connect(DATABASE, connect_timeout=2) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return list(cursor.fetchall()) if cursor.description else []
    with sqlite3.connect(DATABASE, timeout=2) as conn:
        return list(conn.execute(sql, params).fetchall())


def _setup() -> None:
    key = "SERIAL" if DATABASE.startswith(("postgres://", "postgresql://")) else "INTEGER"
    _query(f"CREATE TABLE IF NOT EXISTS items (id {key} PRIMARY KEY, name TEXT, price INTEGER)")
    if not _query("SELECT id FROM items LIMIT 1"):
        for name, price in (("tea", 400), ("coffee", 350), ("cake", 500)):
            _query("INSERT INTO items (name, price) VALUES (?, ?)", (name, price))


async def misbehave() -> Response | None:
    if LATENCY:
        await asyncio.sleep(LATENCY)
    if ERROR_RATE and _random.random() < ERROR_RATE:
        return JSONResponse({"error": "injected failure"}, status_code=500)
    return None


async def home(request: Request) -> Response:
    if (bad := await misbehave()) is not None:
        return bad
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Example shop</title>"
        f"</head><body><h1>Example shop</h1><p>version {VERSION}</p></body></html>"
    )


async def items(request: Request) -> Response:
    if (bad := await misbehave()) is not None:
        return bad
    rows = await asyncio.to_thread(_query, "SELECT id, name, price FROM items ORDER BY id")
    return JSONResponse([{"id": r[0], "name": r[1], "price": r[2]} for r in rows])


async def live(request: Request) -> Response:
    return JSONResponse(
        {"status": "pass", "version": VERSION}, media_type="application/health+json"
    )


async def health(request: Request) -> Response:
    started = time.perf_counter()
    status, output = "pass", ""
    if FAIL_HEALTH:
        status, output = "fail", "health failure injected by APP_FAIL_HEALTH"
    else:
        try:
            await asyncio.wait_for(asyncio.to_thread(_query, "SELECT 1"), timeout=1.0)
        except Exception as exc:  # report the kind, never the connection string
            status, output = "fail", f"database unreachable ({type(exc).__name__})"
    elapsed = (time.perf_counter() - started) * 1000
    body = {
        "status": status,
        "version": VERSION,
        "releaseId": VERSION,
        "uptime": round(time.time() - STARTED, 3),
        "checks": {
            "database:responseTime": [
                {
                    "componentType": "datastore",
                    "observedValue": round(elapsed, 3),
                    "observedUnit": "ms",
                    "status": status,
                    **({"output": output} if output else {}),
                }
            ]
        },
    }
    return JSONResponse(
        body, status_code=200 if status == "pass" else 503, media_type="application/health+json"
    )


async def simple_health(request: Request) -> Response:
    ok = not FAIL_HEALTH
    return JSONResponse(
        {"status": "healthy" if ok else "unhealthy", "version": VERSION, "timestamp": time.time()},
        status_code=200 if ok else 503,
    )


async def metrics(request: Request) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class Observe:
    """Security headers and request metrics, as a plain ASGI middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "other")
            if template not in ("/metrics", "/api/health", "/api/health/live"):
                REQUESTS.labels(scope["method"], template, f"{status // 100}xx").inc()
                LATENCY_SECONDS.labels(template).observe(time.perf_counter() - started)


@asynccontextmanager
async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
    if os.environ.get("APP_FAIL_START", "") not in ("", "0", "false"):
        print("startup failure injected by APP_FAIL_START", file=sys.stderr, flush=True)
        raise SystemExit(3)
    try:
        await asyncio.to_thread(_setup)
    except Exception as exc:  # serve anyway: readiness reports the database as down
        print(f"database setup failed ({type(exc).__name__}); serving", file=sys.stderr)
    yield


routes = [
    Route("/", home),
    Route("/api/items", items),
    Route("/api/health", health),
    Route("/api/health/live", live),
    Route("/api/simple-health", simple_health),
    Route("/metrics", metrics),
]
app = Observe(Starlette(routes=routes, lifespan=lifespan))
