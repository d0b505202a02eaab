"""The writer: batches from the buffer into the store, grouped into issues.

One transaction per batch: upsert the issues (new ones created, counts and
last-seen advanced, resolved ones that receive an event turned ``regressed``),
insert the events (a re-sent event id is ignored), add the hourly counts, and
enqueue the notifications the alert rules ask for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import BindParameter, Table, bindparam, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from controltower.clock import system_clock
from controltower.ingest.alerts import ErrorAlertRules
from controltower.ingest.buffer import IngestBuffer
from controltower.ingest.event import ParsedEvent
from controltower.ingest.metrics import IngestMetrics
from controltower.notify import Notification, enqueue
from controltower.store import Store
from controltower.store.models.ingest import ErrorEvent, ErrorIssue, ErrorIssueHour, Project
from controltower.typing import Clock

log = logging.getLogger("controltower.ingest")


@dataclass
class BatchResult:
    stored: int = 0
    new_issues: list[int] = field(default_factory=list)
    regressed: list[int] = field(default_factory=list)
    spikes: list[int] = field(default_factory=list)


@dataclass
class _Group:
    events: list[ParsedEvent]

    @property
    def first(self) -> ParsedEvent:
        return self.events[0]

    @property
    def last_seen(self) -> datetime:
        return max(event.received_at for event in self.events)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def write_batch(
    store: Store,
    events: list[ParsedEvent],
    rules: ErrorAlertRules | None = None,
    *,
    clock: Clock = system_clock,
) -> BatchResult:
    """Store ``events`` in one transaction and apply the alert rules; return what changed."""
    result = BatchResult()
    if not events:
        return result
    rules = rules or ErrorAlertRules()
    groups: dict[tuple[int, str], _Group] = {}
    for event in events:
        key = (event.project_id, event.fingerprint)
        if key in groups:
            groups[key].events.append(event)
        else:
            groups[key] = _Group([event])
    insert = pg_insert if store.is_postgres else sqlite_insert
    with store.session() as session:
        ids = _issue_ids(session, groups, insert, result)
        _advance(session, groups, ids, result)
        rows = [event.row(ids[key]) for key, group in groups.items() for event in group.events]
        if store.is_postgres:
            result.stored = _copy_events(session, rows)
        else:
            inserted = session.execute(
                sqlite_insert(cast(Table, ErrorEvent.__table__)).on_conflict_do_nothing(
                    index_elements=["project_id", "event_id"]
                ),
                rows,
            )
            result.stored = max(0, inserted.rowcount)  # type: ignore[attr-defined]
        _count_hours(session, groups, ids, insert)
        if rules.enabled:
            _alert(session, groups, ids, rules, result, clock.now())
    return result


EVENT_COLUMNS = (
    "project_id",
    "issue_id",
    "event_id",
    "timestamp",
    "received_at",
    "level",
    "environment",
    "release",
    "code",
    "message",
    "platform",
    "data",
)
_LOAD_TABLE = "error_events_load"


def _copy_events(session: Session, rows: list[dict[str, object]]) -> int:
    """Insert events on PostgreSQL with COPY into a temporary table, then one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (a re-sent event id is skipped).
    Returns how many were new."""
    connection = session.connection()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    columns = ", ".join(f'"{name}"' for name in EVENT_COLUMNS)
    cursor.execute(  # per connection; a rolled-back batch may have rolled its creation back
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_LOAD_TABLE} ON COMMIT DELETE ROWS AS "
        f"SELECT {columns} FROM error_events WITH NO DATA"
    )
    with cursor.copy(f"COPY {_LOAD_TABLE} ({columns}) FROM STDIN") as copy:
        for row in rows:
            values = [row[name] for name in EVENT_COLUMNS]
            values[-1] = json.dumps(values[-1], separators=(",", ":"))
            copy.write_row(values)
    cursor.execute(
        f"INSERT INTO error_events ({columns}) SELECT {columns} FROM {_LOAD_TABLE} "
        "ON CONFLICT (project_id, event_id) DO NOTHING"
    )
    return max(0, int(cursor.rowcount))


def _issue_ids(
    session: Session, groups: dict[tuple[int, str], _Group], insert: object, result: BatchResult
) -> dict[tuple[int, str], int]:
    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, fingerprint in groups:
        by_project[project_id].append(fingerprint)
    ids: dict[tuple[int, str], int] = {}
    for project_id, fingerprints in by_project.items():
        for issue_id, fingerprint in session.execute(
            select(ErrorIssue.id, ErrorIssue.fingerprint).where(
                ErrorIssue.project_id == project_id, ErrorIssue.fingerprint.in_(fingerprints)
            )
        ):
            ids[(project_id, fingerprint)] = issue_id
    _legacy_issue_ids(session, groups, ids)
    for key in sorted(set(groups) - set(ids)):
        group = groups[key]
        first = group.first
        statement = (
            insert(ErrorIssue)  # type: ignore[operator]
            .values(
                project_id=key[0],
                fingerprint=key[1],
                title=first.title,
                culprit=first.culprit,
                level=first.level,
                status="unresolved",
                count=0,
                first_seen=min(event.received_at for event in group.events),
                last_seen=first.received_at,
                last_release=first.release,
            )
            .on_conflict_do_nothing(index_elements=["project_id", "fingerprint"])
            .returning(ErrorIssue.id)
        )
        created = session.execute(statement).scalar()
        if created is not None:
            ids[key] = created
            result.new_issues.append(created)
        else:
            ids[key] = session.execute(
                select(ErrorIssue.id).where(
                    ErrorIssue.project_id == key[0], ErrorIssue.fingerprint == key[1]
                )
            ).scalar_one()
    return ids


def _legacy_issue_ids(
    session: Session, groups: dict[tuple[int, str], _Group], ids: dict[tuple[int, str], int]
) -> None:
    """Events whose fingerprint no issue has yet join the issue their legacy fingerprint
    made, if there is one: issues created under the earlier grouping config keep their ids."""
    wanted: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    for key in set(groups) - set(ids):
        legacy = groups[key].first.legacy_fingerprint
        if legacy and legacy != key[1]:
            wanted[(key[0], legacy)].append(key)
    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, legacy in wanted:
        by_project[project_id].append(legacy)
    for project_id, fingerprints in by_project.items():
        for issue_id, fingerprint in session.execute(
            select(ErrorIssue.id, ErrorIssue.fingerprint).where(
                ErrorIssue.project_id == project_id, ErrorIssue.fingerprint.in_(fingerprints)
            )
        ):
            for key in wanted[(project_id, fingerprint)]:
                ids[key] = issue_id


def _advance(
    session: Session,
    groups: dict[tuple[int, str], _Group],
    ids: dict[tuple[int, str], int],
    result: BatchResult,
) -> None:
    table = cast(Table, ErrorIssue.__table__)
    seen: BindParameter[datetime] = bindparam("b_seen")
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            count=table.c.count + bindparam("b_count"),
            last_seen=case((table.c.last_seen < seen, seen), else_=table.c.last_seen),
            last_release=case(
                (bindparam("b_release") != "", bindparam("b_release")),
                else_=table.c.last_release,
            ),
        ),
        [
            {
                "b_id": ids[key],
                "b_count": len(group.events),
                "b_seen": group.last_seen,
                "b_release": group.events[-1].release,
            }
            for key, group in sorted(groups.items(), key=lambda item: ids[item[0]])
        ],
        execution_options={"synchronize_session": False},
    )
    for key in sorted(groups, key=lambda k: ids[k]):
        if ids[key] in result.new_issues:
            continue
        regressed = session.execute(
            update(ErrorIssue)
            .where(
                ErrorIssue.id == ids[key],
                ErrorIssue.status == "resolved",
                ErrorIssue.resolved_at < groups[key].last_seen,
            )
            .values(status="regressed")
            .returning(ErrorIssue.id)
            .execution_options(synchronize_session=False)
        ).scalar()
        if regressed is not None:
            result.regressed.append(regressed)


def _count_hours(
    session: Session,
    groups: dict[tuple[int, str], _Group],
    ids: dict[tuple[int, str], int],
    insert: object,
) -> None:
    counts: dict[tuple[int, datetime], int] = defaultdict(int)
    for key, group in groups.items():
        for event in group.events:
            counts[(ids[key], _hour(event.received_at))] += 1
    for (issue_id, hour), count in sorted(counts.items()):
        statement = insert(ErrorIssueHour).values(  # type: ignore[operator]
            issue_id=issue_id, hour=hour, count=count
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["issue_id", "hour"],
                set_={"count": ErrorIssueHour.count + statement.excluded.count},
            )
        )


def _alert(
    session: Session,
    groups: dict[tuple[int, str], _Group],
    ids: dict[tuple[int, str], int],
    rules: ErrorAlertRules,
    result: BatchResult,
    now: datetime,
) -> None:
    names = {row[0]: row[1] for row in session.execute(select(Project.id, Project.name))}
    for key, group in groups.items():
        issue_id = ids[key]
        event = group.first
        project = names.get(key[0], str(key[0]))
        if issue_id in result.new_issues and rules.notifies(event.level):
            _notify(session, rules, issue_id, "new", f"error:{issue_id}:new", project, event)
        if issue_id in result.regressed:
            count = session.scalar(select(ErrorIssue.count).where(ErrorIssue.id == issue_id))
            _notify(
                session,
                rules,
                issue_id,
                "regressed",
                f"error:{issue_id}:regressed:{count}",
                project,
                event,
            )
    if rules.spike_count:
        _spikes(session, groups, ids, rules, result, now, names)


def _spikes(
    session: Session,
    groups: dict[tuple[int, str], _Group],
    ids: dict[tuple[int, str], int],
    rules: ErrorAlertRules,
    result: BatchResult,
    now: datetime,
    names: dict[int, str],
) -> None:
    since = now - timedelta(seconds=rules.spike_window)
    for key, group in groups.items():
        issue_id = ids[key]
        total, notified_at = session.execute(
            select(ErrorIssue.count, ErrorIssue.spike_notified_at).where(ErrorIssue.id == issue_id)
        ).one()
        if total < rules.spike_count:
            continue
        if notified_at is not None and notified_at > since:
            continue
        recent = session.scalar(
            select(func.count())
            .select_from(ErrorEvent)
            .where(ErrorEvent.issue_id == issue_id, ErrorEvent.received_at >= since)
        )
        if (recent or 0) < rules.spike_count:
            continue
        session.execute(
            update(ErrorIssue)
            .where(ErrorIssue.id == issue_id)
            .values(spike_notified_at=now)
            .execution_options(synchronize_session=False)
        )
        window = int(now.timestamp() // max(rules.spike_window, 1.0))
        _notify(
            session,
            rules,
            issue_id,
            "spike",
            f"error:{issue_id}:spike:{window}",
            names.get(key[0], str(key[0])),
            group.first,
            extra={"events": f"{recent} in {int(rules.spike_window)}s"},
        )
        result.spikes.append(issue_id)


def _notify(
    session: Session,
    rules: ErrorAlertRules,
    issue_id: int,
    what: str,
    key: str,
    project: str,
    event: ParsedEvent,
    extra: dict[str, str] | None = None,
) -> None:
    heading = {"new": "New error", "regressed": "Regressed error", "spike": "Error spike"}[what]
    severity = "critical" if event.level == "fatal" or what == "spike" else "warning"
    url = f"{rules.public_url.rstrip('/')}/errors/{issue_id}" if rules.public_url else ""
    enqueue(
        session,
        Notification(
            key=key,
            kind=f"error.{what}",
            title=f"{heading} in {project}: {event.title}"[:300],
            text=event.culprit,
            severity=severity,
            service=project,
            environment=event.environment,
            url=url,
            fields={
                "issue": str(issue_id),
                "level": event.level,
                "release": event.release,
                **(extra or {}),
            },
            labels={"project": project, "kind": f"error.{what}"},
        ),
        rules.channels,
    )


class IngestWriter:
    """The background service that drains the buffer; on stop it flushes what is left."""

    name = "ingest-writer"

    def __init__(
        self,
        store: Store,
        buffer: IngestBuffer,
        rules: ErrorAlertRules | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        clock: Clock = system_clock,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.store = store
        self.buffer = buffer
        self.rules = rules or ErrorAlertRules()
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.clock = clock
        self.stored = 0
        self.failures = 0
        self.dropped = 0
        self.dropped_in_last = 0
        self.metrics = metrics
        self.last_result = BatchResult()

    async def flush_once(self) -> int:
        """Write one batch. A batch the store rejects for its data is written event by event
        and the events that still fail are dropped (logged and counted); when the store
        cannot be reached the batch goes back to the buffer and the error propagates."""
        batch = self.buffer.take(self.batch_size)
        if not batch:
            return 0
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(
                write_batch, self.store, batch, self.rules, clock=self.clock
            )
        except (OperationalError, InterfaceError):
            self.failures += 1
            self.buffer.put_back(batch)
            log.exception("writing %d error events failed; they stay queued", len(batch))
            raise
        except Exception:
            log.exception("a batch of %d error events was refused; writing one by one", len(batch))
            result = await asyncio.to_thread(self._one_by_one, batch)
        self.stored += len(batch) - self.dropped_in_last
        self.last_result = result
        if self.metrics is not None:
            self.metrics.stored.inc(len(batch) - self.dropped_in_last)
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            self.metrics.buffered.set(len(self.buffer))
        self.dropped_in_last = 0
        return len(batch)

    def _one_by_one(self, batch: list[ParsedEvent]) -> BatchResult:
        total = BatchResult()
        for event in batch:
            try:
                result = write_batch(self.store, [event], self.rules, clock=self.clock)
            except (OperationalError, InterfaceError):
                raise
            except Exception:
                self.dropped += 1
                self.dropped_in_last += 1
                log.exception("error event %s could not be stored; dropped", event.event_id)
                continue
            total.stored += result.stored
            total.new_issues += result.new_issues
            total.regressed += result.regressed
            total.spikes += result.spikes
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until ``stop``, then everything still queued.

        A batch is written when ``batch_size`` events are queued or the oldest has
        waited ``flush_interval``, whichever comes first; a failed write is retried
        with backoff while the events stay queued.
        """
        delay = self.flush_interval
        while not stop.is_set():
            await self.buffer.wait_for(1, None, stop)
            await self.buffer.wait_for(self.batch_size, self.flush_interval, stop)
            try:
                while await self.flush_once():
                    delay = self.flush_interval
                    if len(self.buffer) < self.batch_size:
                        break
            except Exception:
                await _pause(stop, delay)
                delay = min(max(delay, 0.05) * 2, 5.0)
        await self.drain()

    async def drain(self, attempts: int = 3) -> None:
        """Write everything still queued (on shutdown), retrying a failed batch a few times."""
        failures = 0
        while len(self.buffer):
            try:
                await self.flush_once()
            except Exception:
                failures += 1
                if failures >= attempts:
                    log.error("%d error events were not stored at shutdown", len(self.buffer))
                    return
                await asyncio.sleep(0.5 * failures)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
