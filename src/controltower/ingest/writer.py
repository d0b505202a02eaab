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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

from sqlalchemy import BindParameter, Table, bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from controltower.clock import system_clock
from controltower.ingest.accounting import IngestAccount
from controltower.ingest.alerts import ErrorAlertRules, apply_rules
from controltower.ingest.buffer import IngestBuffer
from controltower.ingest.event import ParsedEvent
from controltower.ingest.metrics import IngestMetrics
from controltower.ingest.spool import Spool
from controltower.ingest.symbolicate import Symbolicator
from controltower.store import Store
from controltower.store.models.ingest import DeadLetter, ErrorEvent, ErrorIssue, ErrorIssueHour
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
            by_issue = {key: group.events for key, group in groups.items()}
            result.spikes += apply_rules(
                session, by_issue, ids, rules, result.new_issues, result.regressed, clock.now()
            )
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


# At shutdown batches are kept small, so the deadline is checked often.
DRAIN_BATCH = 500


class _StoreDown(Exception):
    """The store could not be reached; ``remaining`` events were not written."""

    def __init__(self, remaining: list[ParsedEvent], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.remaining = remaining


def _reason(exc: BaseException) -> str:
    """Why the store refused an event: the driver's message, ASCII, bounded."""
    cause = getattr(exc, "orig", None) or exc
    text = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    return text.encode("ascii", "backslashreplace").decode("ascii")[:1000]


def dead_letter(store: Store, event: ParsedEvent, reason: str, now: datetime) -> None:
    """Keep an event the store refused, with why, in ``ingest_dead_letters``."""
    from controltower.ingest.spool import event_to_json

    text = json.dumps(event_to_json(event), ensure_ascii=True, default=str, allow_nan=True)
    project_id = event.project_id if 0 < event.project_id < 2**31 else 0
    with store.session() as session:
        session.add(
            DeadLetter(
                project_id=project_id,
                event_id=event.event_id[:32].encode("ascii", "replace").decode("ascii"),
                received_at=event.received_at,
                failed_at=now,
                reason=reason,
                event=text,
            )
        )


class IngestWriter:
    """The background service that drains the buffer into the store.

    A batch the store refuses for its data is split in halves until the refused
    events stand alone; each of those is kept in ``ingest_dead_letters`` with the
    reason (and counted), so one bad event costs a few extra transactions, never
    the batch or the throughput. When the store cannot be reached, what was not
    written goes back to the front of the buffer and the writer backs off.

    On stop it writes what is buffered until ``drain_timeout``, then persists the
    rest to the ``spool`` (replayed at the next start); nothing accepted is dropped.
    """

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
        account: IngestAccount | None = None,
        spool: Spool | None = None,
        drain_timeout: float = 15.0,
    ) -> None:
        self.store = store
        self.buffer = buffer
        self.rules = rules or ErrorAlertRules()
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.clock = clock
        self.failures = 0
        self.metrics = metrics
        self.account = account or IngestAccount(buffer)
        self.spool = spool
        self.drain_timeout = drain_timeout
        self.spooled_to: list[Path] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tower-writer")
        self._current: Future[BatchResult] | None = None
        self.last_result = BatchResult()
        self.symbolicator = Symbolicator(store)

    @property
    def stored(self) -> int:
        return self.account.stored

    @property
    def dead_lettered(self) -> int:
        return self.account.dead_lettered

    async def flush_once(self, limit: int | None = None) -> int:
        """Write one batch (of at most ``limit`` events); returns how many it held. When
        the store cannot be reached, the unwritten events go back to the buffer and the
        error propagates."""
        batch = self.buffer.take(min(limit or self.batch_size, self.batch_size))
        if not batch:
            return 0
        with self.account.lock:
            self.account.in_flight += len(batch)
        started = time.perf_counter()
        self._current = self._pool.submit(self._write, batch)
        try:
            result = await asyncio.wrap_future(self._current)
        except _StoreDown as down:
            self._requeue(down)
            raise
        finally:
            self._current = None
        self.last_result = result
        if self.metrics is not None:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            self.metrics.buffered.set(len(self.buffer))
        return len(batch)

    def _requeue(self, down: _StoreDown) -> None:
        self.failures += 1
        with self.account.lock:
            self.account.in_flight -= len(down.remaining)
            self.buffer.put_back(down.remaining)
        log.error("writing error events failed (%s); %d stay queued", down, len(down.remaining))

    def _settle(self) -> None:
        """After a cancellation: let the batch being written finish (its thread cannot be
        stopped), and put back what it could not write, so ``persist`` sees it all."""
        current = self._current
        if current is None:
            return
        try:
            current.result(timeout=60)
        except _StoreDown as down:
            self._requeue(down)
        except Exception:
            log.exception("the batch being written at shutdown failed")

    def _write(self, batch: list[ParsedEvent]) -> BatchResult:
        """Symbolicate and write ``batch``, isolating the events the store refuses (in a thread)."""
        total = BatchResult()
        pending = [self.symbolicator.apply(batch)]
        while pending:
            chunk = pending.pop(0)
            try:
                result = write_batch(self.store, chunk, self.rules, clock=self.clock)
            except (OperationalError, InterfaceError) as exc:
                remaining = [event for part in [chunk, *pending] for event in part]
                raise _StoreDown(remaining, exc) from exc
            except Exception as exc:
                if len(chunk) > 1:
                    middle = len(chunk) // 2
                    pending[0:0] = [chunk[:middle], chunk[middle:]]
                    continue
                self._bury(chunk[0], exc, pending)
                continue
            self.account.wrote(stored=len(chunk))
            if self.metrics is not None:
                self.metrics.stored.inc(len(chunk))
            total.stored += result.stored
            total.new_issues += result.new_issues
            total.regressed += result.regressed
            total.spikes += result.spikes
        return total

    def _bury(
        self, event: ParsedEvent, exc: BaseException, pending: list[list[ParsedEvent]]
    ) -> None:
        reason = _reason(exc)
        try:
            dead_letter(self.store, event, reason, self.clock.now())
        except (OperationalError, InterfaceError) as down:
            raise _StoreDown([event, *(e for part in pending for e in part)], down) from exc
        self.account.wrote(dead=1)
        log.error(
            "error event %s was refused by the store (%s); dead-lettered", event.event_id, reason
        )
        if self.metrics is not None:
            self.metrics.dead_lettered.labels(reason.split(":", 1)[0]).inc()

    async def replay(self) -> int:
        """Write the events spooled by an earlier stop; returns how many were replayed."""
        if self.spool is None:
            return 0
        replayed = 0
        for path in await asyncio.to_thread(self.spool.claim):
            events = await asyncio.to_thread(self.spool.read, path)
            with self.account.lock:
                self.account.replayed += len(events)
                self.account.in_flight += len(events)
            try:
                for start in range(0, len(events), self.batch_size):
                    part = events[start : start + self.batch_size]
                    await asyncio.to_thread(self._write, part)
                    # a crash here replays the file again: event rows are not
                    # duplicated (their ids are unique), only issue counts may be
            except _StoreDown as down:
                with self.account.lock:  # the file keeps them; give them back to it
                    self.account.in_flight -= len(down.remaining)
                    self.account.replayed -= len(down.remaining)
                written = events[: len(events) - len(down.remaining)]
                await asyncio.to_thread(self._rewrite, path, down.remaining)
                log.error(
                    "replaying the spool stopped (%s); %d events wait", down, len(down.remaining)
                )
                replayed += len(written)
                raise
            await asyncio.to_thread(path.unlink)
            replayed += len(events)
            log.warning("replayed %d spooled error events from %s", len(events), path.name)
        if self.metrics is not None and replayed:
            self.metrics.replayed.inc(replayed)
        return replayed

    def _rewrite(self, path: Path, events: list[ParsedEvent]) -> None:
        assert self.spool is not None
        self.spool.write(events)
        path.unlink()

    async def run(self, stop: asyncio.Event) -> None:
        """Replay the spool, then write batches until ``stop``, then drain (or spool).

        A batch is written when ``batch_size`` events are queued or the oldest has
        waited ``flush_interval``, whichever comes first; a failed write is retried
        with backoff while the events stay queued.
        """
        delay = self.flush_interval
        replayed = self.spool is None
        try:
            while True:
                try:
                    if not replayed:
                        await self.replay()
                        replayed = True
                    if stop.is_set():
                        break
                    await self.buffer.wait_for(1, None, stop)
                    await self.buffer.wait_for(self.batch_size, self.flush_interval, stop)
                    while await self.flush_once():
                        delay = self.flush_interval
                        if len(self.buffer) < self.batch_size:
                            break
                except _StoreDown:
                    if stop.is_set():
                        break
                    await _pause(stop, delay)
                    delay = min(max(delay, 0.05) * 2, 5.0)
            await self.drain()
        except asyncio.CancelledError:
            self._settle()
            self.persist()
            raise

    async def drain(self, timeout: float | None = None) -> None:
        """Write everything still queued (on shutdown) until ``timeout`` (default
        ``drain_timeout``); what is left then, or when the store is down, is spooled."""
        deadline = time.monotonic() + (self.drain_timeout if timeout is None else timeout)
        failures = 0
        while len(self.buffer) and time.monotonic() < deadline:
            try:
                await self.flush_once(DRAIN_BATCH)
            except _StoreDown:
                failures += 1
                if failures >= 3:
                    break
                await asyncio.sleep(min(0.5 * failures, max(0.0, deadline - time.monotonic())))
        self.persist()

    def persist(self) -> None:
        """Spool whatever is still buffered (synchronously: this runs at exit)."""
        events = self.buffer.take(len(self.buffer))
        if not events:
            return
        if self.spool is None:
            self.buffer.put_back(events)
            log.error("%d error events were not stored at shutdown (no spool)", len(events))
            return
        try:
            path = self.spool.write(events)
        except OSError:
            self.buffer.put_back(events)
            log.exception("%d error events could not be spooled at shutdown", len(events))
            return
        with self.account.lock:
            self.account.spooled += len(events)
        self.spooled_to.append(path)
        if self.metrics is not None:
            self.metrics.spooled.inc(len(events))
        log.warning(
            "%d error events spooled to %s; they are written at the next start", len(events), path
        )


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
