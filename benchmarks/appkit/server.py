"""The app under test: one FastAPI app serving a bare JSON endpoint and the same three
dependency checks (TCP connect, HTTP GET, PostgreSQL SELECT 1) through appkit,
fastapi-health and py-healthcheck.

Configured by environment: BENCH_TCP_PORT, BENCH_HTTP_URL, BENCH_PG_URL.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from fastapi.responses import Response
from fastapi_health import health as fastapi_health
from healthcheck import HealthCheck
from starlette.requests import Request
from starlette.responses import Response as PlainResponse

from controltower.appkit import Health, checks

TCP_PORT = int(os.environ["BENCH_TCP_PORT"])
HTTP_URL = os.environ["BENCH_HTTP_URL"]
PG_URL = os.environ["BENCH_PG_URL"]

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "pass"}


# The leanest JSON endpoint Starlette allows: fixed bytes, no FastAPI machinery.
async def bare_starlette(request: Request) -> PlainResponse:
    return PlainResponse(b'{"status":"pass"}', media_type="application/json")


app.add_route("/bare-starlette", bare_starlette, methods=["GET"])


# appkit: three checks, 1 s timeout each, cached 2 s on success and 0.5 s on failure.
appkit = Health(
    checks.tcp("127.0.0.1", TCP_PORT, name="tcp"),
    checks.http(HTTP_URL, name="http"),
    checks.postgres(PG_URL, name="postgres"),
    ready_path="/appkit",
    live_path="/appkit/live",
)
appkit.mount(app)


# fastapi-health: conditions are FastAPI dependencies; it has no timeout and no cache.
_client = httpx.AsyncClient()


async def tcp_ok() -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", TCP_PORT)
    except OSError:
        return False
    writer.close()
    return True


async def http_ok() -> bool:
    try:
        return (await _client.get(HTTP_URL)).status_code < 400
    except httpx.HTTPError:
        return False


async def postgres_ok() -> bool:
    try:
        async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
            await conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


app.add_api_route("/fastapi-health", fastapi_health([tcp_ok, http_ok, postgres_ok]))


# py-healthcheck: sync checkers run one after another; its timeout uses SIGALRM,
# which only works on the main thread, so off it (as in any threaded server) it is 0.
_sync_client = httpx.Client()


def tcp_check() -> tuple[bool, str]:
    with socket.create_connection(("127.0.0.1", TCP_PORT)):
        return True, "tcp ok"


def http_check() -> tuple[bool, str]:
    return _sync_client.get(HTTP_URL).status_code < 400, "http ok"


def postgres_check() -> tuple[bool, str]:
    with psycopg.connect(PG_URL) as conn:
        conn.execute("SELECT 1")
    return True, "postgres ok"


pyhc = HealthCheck(success_ttl=2, failed_ttl=0.5, checkers=[tcp_check, http_check, postgres_check])


@app.get("/py-healthcheck")
def py_healthcheck() -> Any:
    message, status, headers = pyhc.run()
    return Response(message, status_code=status, headers=headers)
