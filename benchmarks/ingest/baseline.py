"""The plainest ingestion endpoint: parse the envelope, INSERT each event, commit, answer.

The baseline ``benchmarks.ingest.run`` measures tower against: a synchronous write per
request, one INSERT per event, as a straightforward Django or GlitchTip-style view
does it, with no grouping, scrubbing or batching. It stores the event id and the raw
event JSON. ``BENCH_DB_URL`` is ``sqlite:///path`` or a PostgreSQL URL.

    uvicorn benchmarks.ingest.baseline:app --port 8700
"""

from __future__ import annotations

import json
import os
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

URL = os.environ.get("BENCH_DB_URL", "sqlite:///baseline.db")
TABLE = "CREATE TABLE IF NOT EXISTS baseline_events (id {id}, event_id TEXT, data TEXT)"
INSERT = text("INSERT INTO baseline_events (event_id, data) VALUES (:event_id, :data)")


def _engine(url: str) -> Engine:
    if url.startswith("postgresql"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url, pool_size=16, max_overflow=0)
        with engine.begin() as conn:
            conn.execute(text(TABLE.format(id="BIGSERIAL PRIMARY KEY")))
        return engine
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, record: Any) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")

    with engine.begin() as conn:
        conn.execute(text(TABLE.format(id="INTEGER PRIMARY KEY")))
    return engine


engine = _engine(URL)


def insert(events: list[dict[str, str]]) -> None:
    """One transaction per request, one INSERT statement per event."""
    with engine.begin() as conn:
        for row in events:
            conn.execute(INSERT, row)


def parse(body: bytes) -> list[dict[str, str]]:
    """The events of an envelope: event id and JSON text."""
    lines = body.split(b"\n")
    header: dict[str, Any] = json.loads(lines[0] or b"{}")
    events = []
    index = 1
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        item = json.loads(lines[index])
        payload = lines[index + 1] if index + 1 < len(lines) else b""
        index += 2
        if item.get("type") == "event":
            found = json.loads(payload)
            event_id = str(found.get("event_id") or header.get("event_id"))
            events.append({"event_id": event_id, "data": payload.decode()})
    return events


async def envelope(request: Request) -> Response:
    events = parse(await request.body())
    await run_in_threadpool(insert, events)
    return JSONResponse({"id": events[0]["event_id"] if events else None})


app = Starlette(routes=[Route("/api/{project_id:int}/envelope/", envelope, methods=["POST"])])
