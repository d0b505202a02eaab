"""Retention of error events and CSP reports: pruned in small batches, beside ingestion.

``[server] events_keep`` (and a project's own ``events_keep``) bounds how long
error events are kept. ``prune_events`` deletes the oldest events in batches
of ``batch`` rows (found through the ``(project_id, received_at)`` index, so a
batch reads only what it deletes), each in its own short transaction with a
``pause`` after it, so ingestion (which writes through the same store) never
waits long for a lock. Issues stay
(with their counts and first/last seen); CSP report groups not seen within
the window go, and so do web-vitals metrics received before it (batch by batch,
like events). ``EventRetention`` runs it in ``tower serve`` every
``interval``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import delete, select

from controltower.clock import system_clock
from controltower.spec import Spec
from controltower.store import Store
from controltower.store.models.ingest import CspReport, ErrorEvent, Project
from controltower.store.models.vitals import WebVital
from controltower.typing import Clock

log = structlog.get_logger("controltower.ingest")


@dataclass
class Pruned:
    events: int = 0
    csp_reports: int = 0
    vitals: int = 0
    batches: int = 0


def windows(spec: Spec) -> tuple[float, dict[str, float]]:
    """The default window and each project's own, in seconds (0: keep forever)."""
    default = spec.server.events_keep
    return default, {p.name: p.events_keep or default for p in spec.server.projects}


def prune_events(
    spec: Spec,
    store: Store,
    *,
    clock: Clock = system_clock,
    batch: int = 2000,
    pause: float = 0.05,
) -> Pruned:
    """Delete events and CSP report groups older than their project's window, batch by batch."""
    default, own = windows(spec)
    out = Pruned()
    now = clock.now()
    with store.session() as session:
        projects = session.execute(select(Project.id, Project.name)).all()
    for project_id, name in projects:
        keep = own.get(name, default)
        if keep <= 0:
            continue
        cutoff = now - timedelta(seconds=keep)
        for table in (ErrorEvent, WebVital):
            while True:
                with store.session() as session:
                    ids = list(
                        session.scalars(
                            select(table.id)
                            .where(table.project_id == project_id, table.received_at < cutoff)
                            .order_by(table.received_at)
                            .limit(batch)
                        )
                    )
                    if ids:
                        session.execute(delete(table).where(table.id.in_(ids)))
                out.batches += 1 if ids else 0
                if table is ErrorEvent:
                    out.events += len(ids)
                else:
                    out.vitals += len(ids)
                if len(ids) < batch:
                    break
                # Let the ingestion writer in between two batches: on SQLite it waits
                # for the one write lock, and a loop that takes it back at once starves it.
                clock.sleep(pause)
        with store.session() as session:
            gone = session.execute(
                delete(CspReport).where(
                    CspReport.project_id == project_id, CspReport.last_seen < cutoff
                )
            )
            out.csp_reports += int(getattr(gone, "rowcount", 0) or 0)
    return out


class EventRetention:
    """``tower serve``'s service that prunes events every ``interval`` seconds."""

    name = "event-retention"

    def __init__(
        self, spec: Spec, store: Store, *, clock: Clock = system_clock, interval: float = 600.0
    ) -> None:
        self.spec = spec
        self.store = store
        self.clock = clock
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        from controltower.backup.status import _wait

        await _wait(self.clock, min(60.0, self.interval), stop)
        while not stop.is_set():
            pruned = await asyncio.to_thread(prune_events, self.spec, self.store, clock=self.clock)
            if pruned.events or pruned.csp_reports or pruned.vitals:
                log.info(
                    "ingest.retention",
                    events=pruned.events,
                    csp_reports=pruned.csp_reports,
                    vitals=pruned.vitals,
                    batches=pruned.batches,
                )
            await _wait(self.clock, self.interval, stop)


def wanted(spec: Spec) -> bool:
    default, own = windows(spec)
    return default > 0 or any(v > 0 for v in own.values())
