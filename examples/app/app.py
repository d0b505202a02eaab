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
    build.txt          a file next to app.py naming the build; /api/build answers with it
    TOWER_DSN          optional: send logged errors to tower serve (or Sentry) at this DSN

Health, metrics and security headers come from ``controltower.appkit``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from controltower.appkit import (
    Check,
    CheckFailed,
    Health,
    Metrics,
    capture_errors,
    check,
    checks,
    secure,
)

VERSION = os.environ.get("APP_VERSION", "dev")
DATABASE = os.environ.get("APP_DATABASE", os.path.join(os.path.dirname(__file__), "example.db"))
ERROR_RATE = float(os.environ.get("APP_ERROR_RATE", "0") or 0)
LATENCY = float(os.environ.get("APP_LATENCY_MS", "0") or 0) / 1000.0
FAIL_HEALTH = os.environ.get("APP_FAIL_HEALTH", "") not in ("", "0", "false")
ON_POSTGRES = DATABASE.startswith(("postgres://", "postgresql://"))
_random = random.Random(os.environ.get("APP_SEED"))


def _read_build() -> str:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build.txt")
    if not os.path.exists(path):
        return "none"
    with open(path) as handle:
        return handle.read().strip()


BUILD = _read_build()
log = logging.getLogger("example")


def _query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if ON_POSTGRES:
        import psycopg

        with psycopg.connect(DATABASE, connect_timeout=2) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return list(cursor.fetchall()) if cursor.description else []
    with sqlite3.connect(DATABASE, timeout=2) as conn:
        return list(conn.execute(sql, params).fetchall())


def _setup() -> None:
    key = "SERIAL" if ON_POSTGRES else "INTEGER"
    _query(f"CREATE TABLE IF NOT EXISTS items (id {key} PRIMARY KEY, name TEXT, price INTEGER)")
    if not _query("SELECT id FROM items LIMIT 1"):
        for name, price in (("tea", 400), ("coffee", 350), ("cake", 500)):
            _query("INSERT INTO items (name, price) VALUES (?, ?)", (name, price))


def _database_check() -> Check:
    if ON_POSTGRES:
        return checks.postgres(DATABASE, name="database")
    return check("database", component_type="datastore")(lambda: _query("SELECT 1"))


@check("release")
def _injected() -> None:
    if FAIL_HEALTH:
        raise CheckFailed("health failure injected by APP_FAIL_HEALTH")


health = Health(
    _database_check(),
    _injected,
    version=VERSION,
    simple_path="/api/simple-health",
    success_ttl=1.0,
    failure_ttl=0.5,
)


async def misbehave() -> Response | None:
    if LATENCY:
        await asyncio.sleep(LATENCY)
    if ERROR_RATE and _random.random() < ERROR_RATE:
        log.error("injected failure", extra={"code": "injected_failure"})
        return JSONResponse({"error": "injected failure"}, status_code=500)
    return None


async def home(request: Request) -> Response:
    if (bad := await misbehave()) is not None:
        return bad
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Example shop</title>"
        f"</head><body><h1>Example shop</h1><p>version {VERSION}, build {BUILD}</p></body></html>",
        headers={"cache-control": "no-cache"},
    )


async def build(request: Request) -> Response:
    if (bad := await misbehave()) is not None:
        return bad
    return PlainTextResponse(f"build {BUILD}\n", headers={"x-app-build": BUILD})


async def items(request: Request) -> Response:
    if (bad := await misbehave()) is not None:
        return bad
    rows = await asyncio.to_thread(_query, "SELECT id, name, price FROM items ORDER BY id")
    return JSONResponse([{"id": r[0], "name": r[1], "price": r[2]} for r in rows])


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if os.environ.get("APP_FAIL_START", "") not in ("", "0", "false"):
        print("startup failure injected by APP_FAIL_START", file=sys.stderr, flush=True)
        raise SystemExit(3)
    try:
        await asyncio.to_thread(_setup)
    except Exception as exc:  # serve anyway: readiness reports the database as down
        print(f"database setup failed ({type(exc).__name__}); serving", file=sys.stderr)
    yield


app = Starlette(
    routes=[Route("/", home), Route("/api/items", items), Route("/api/build", build)],
    lifespan=lifespan,
)
health.mount(app)  # /api/health, /api/health/live, /api/simple-health
Metrics().mount(app)  # request metrics and /metrics
secure(app, trusted_types=True)  # HSTS, CSP with nonce and Trusted Types, no server header
if os.environ.get("TOWER_DSN"):
    capture_errors(os.environ["TOWER_DSN"], app=app, release=VERSION)  # logged and unhandled errors
