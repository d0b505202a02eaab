"""``/api/v1/ingest``: where every accepted error event is, and the dead letters.

``GET /api/v1/ingest`` answers this process's accounting identity (see
``controltower.ingest.accounting``): accepted + replayed = stored + buffered +
dead_lettered + spooled, with ``unaccounted`` (0 unless an event was lost) and
the dead letters the store holds. ``GET /api/v1/ingest/dead-letters`` lists
those, newest first, with the reason and the event as it was parsed.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.server.api.common import (
    context,
    in_thread,
    int_param,
    iso,
    optional_id,
    page,
    requires,
)
from controltower.server.tokens import TokenInfo
from controltower.store import Store
from controltower.store.models.ingest import DeadLetter


def _count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(DeadLetter)) or 0)


def list_dead_letters(store: Store, *, limit: int, before: int | None) -> list[dict[str, Any]]:
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(DeadLetter.id < before)
    with store.session() as session:
        return [
            {
                "id": row.id,
                "project_id": row.project_id,
                "event_id": row.event_id,
                "received_at": iso(row.received_at),
                "failed_at": iso(row.failed_at),
                "reason": row.reason,
                "event": json.loads(row.event),
            }
            for row in session.scalars(query)
        ]


@requires("read")
async def accounting(request: Request, token: TokenInfo) -> Response:
    tower = context(request)
    figures: dict[str, int] = (
        tower.ingestion.ledger.snapshot() if tower.ingestion is not None else {}
    )
    stored_letters = await in_thread(_count, tower.store)
    return JSONResponse({"process": figures, "dead_letters_in_store": stored_letters})


@requires("read")
async def dead_letters(request: Request, token: TokenInfo) -> Response:
    limit = int_param(request, "limit", 50, low=1, high=500)
    before = optional_id(request, "before")
    items = await in_thread(
        lambda: list_dead_letters(context(request).store, limit=limit, before=before)
    )
    return JSONResponse(page(items, limit))


routes = [
    Route("/api/v1/ingest", accounting, methods=["GET"]),
    Route("/api/v1/ingest/dead-letters", dead_letters, methods=["GET"]),
]
