"""Check results: batched writes, rollups per minute, hour and day, retention, uptime, SLOs.

``ResultWriter.flush`` writes a batch in one transaction: the raw rows, the
counters of each monitor (as SQL increments, so the alerting pass and a
resolve by hand never race with a lost update) and the rollups (upserts that
add to the bucket). Uptime reads rollups only, so it costs the same after a
year as after an hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from controltower.monitor.probes import CheckOutcome
from controltower.spec.store import StoreSpec
from controltower.store import Store
from controltower.store.base import UTCDateTime
from controltower.store.models.monitor import MonitorResult, MonitorRollup, MonitorState

BUCKETS = {"minute": 60, "hour": 3600, "day": 86400}
WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of row lives. Raw results are also capped per monitor."""

    raw: float = 7 * 86400.0
    raw_per_monitor: int = 100
    minute: float = 2 * 3600.0
    hour: float = 35 * 86400.0
    day: float = 400 * 86400.0

    @classmethod
    def from_spec(cls, store: StoreSpec, raw_per_monitor: int = 100) -> RetentionPolicy:
        """``[store]`` retention, with the floors the uptime windows need: minute
        rollups serve the 1 h window and hour rollups the 30 d one."""
        return cls(
            raw=store.retention_raw,
            raw_per_monitor=raw_per_monitor,
            minute=max(store.retention_minute, MINUTE_FLOOR),
            hour=max(store.retention_hour, HOUR_FLOOR),
            day=max(store.retention_day, store.retention_hour, HOUR_FLOOR),
        )


MINUTE_FLOOR = 2 * 3600.0
HOUR_FLOOR = 31 * 86400.0


def bucket_start(at: datetime, bucket: str) -> datetime:
    if bucket == "minute":
        return at.replace(second=0, microsecond=0)
    if bucket == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Pending:
    monitor_id: int
    outcome: CheckOutcome
    next_due_at: datetime | None
    failure_threshold: int
    success_threshold: int


_T: Table = MonitorState.__table__  # type: ignore[assignment]
_AT = bindparam("b_at", type_=UTCDateTime())
_THRESHOLD: BindParameter[int] = bindparam("b_threshold")
_COMMON: dict[str, Any] = {
    "level": bindparam("b_level"),
    "last_check_at": _AT,
    "last_message": bindparam("b_message"),
    "next_due_at": bindparam("b_next", type_=UTCDateTime()),
}
_FAILED = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"))
    .values(
        consecutive_failures=_T.c.consecutive_failures + 1,
        consecutive_successes=0,
        failing_since=case(
            (
                and_(_T.c.failing_since.is_(None), _T.c.consecutive_failures + 1 >= _THRESHOLD),
                _AT,
            ),
            else_=_T.c.failing_since,
        ),
        recovered_since=None,
        **_COMMON,
    )
)
_PASSED = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"))
    .values(
        consecutive_successes=_T.c.consecutive_successes + 1,
        consecutive_failures=0,
        recovered_since=case(
            (
                and_(
                    _T.c.failing_since.is_not(None),
                    _T.c.recovered_since.is_(None),
                    _T.c.consecutive_successes + 1 >= _THRESHOLD,
                ),
                _AT,
            ),
            else_=_T.c.recovered_since,
        ),
        **_COMMON,
    )
)


@dataclass
class ResultWriter:
    """Collects outcomes in memory; ``flush`` (run in a thread) writes them in one go."""

    store: Store
    worker: str = ""
    pending: list[Pending] = field(default_factory=list)
    written: int = 0

    def add(
        self,
        monitor_id: int,
        outcome: CheckOutcome,
        *,
        next_due_at: datetime | None = None,
        failure_threshold: int = 1,
        success_threshold: int = 1,
    ) -> None:
        self.pending.append(
            Pending(monitor_id, outcome, next_due_at, failure_threshold, success_threshold)
        )

    def take(self) -> list[Pending]:
        batch, self.pending = self.pending, []
        return batch

    def flush(self, batch: list[Pending] | None = None) -> int:
        items = self.take() if batch is None else batch
        if not items:
            return 0
        with self.store.session() as session:
            write_batch(session, items, worker=self.worker)
        self.written += len(items)
        return len(items)


def write_batch(session: Session, items: list[Pending], *, worker: str = "") -> None:
    session.execute(
        insert(MonitorResult),
        [
            {
                "monitor_id": item.monitor_id,
                "at": item.outcome.at,
                "ok": item.outcome.ok,
                "level": item.outcome.level,
                "latency_ms": round(item.outcome.latency * 1000, 3),
                "message": item.outcome.message[:500],
                "worker": worker,
            }
            for item in items
        ],
    )
    failed = [_params(item) for item in items if not item.outcome.ok]
    passed = [_params(item) for item in items if item.outcome.ok]
    if failed:
        session.execute(_FAILED, failed)
    if passed:
        session.execute(_PASSED, passed)
    add_rollups(session, items)


def _params(item: Pending) -> dict[str, Any]:
    outcome = item.outcome
    threshold = item.success_threshold if outcome.ok else item.failure_threshold
    return {
        "b_id": item.monitor_id,
        "b_at": outcome.at,
        "b_threshold": threshold,
        "b_level": outcome.level,
        "b_message": outcome.message[:2000],
        "b_next": item.next_due_at,
    }


def add_rollups(session: Session, items: Iterable[Pending]) -> None:
    sums: dict[tuple[int, str, datetime], list[float]] = {}
    for item in items:
        latency = item.outcome.latency * 1000
        for bucket in BUCKETS:
            key = (item.monitor_id, bucket, bucket_start(item.outcome.at, bucket))
            acc = sums.get(key)
            if acc is None:
                sums[key] = [1, 0 if item.outcome.ok else 1, latency, latency]
            else:
                acc[0] += 1
                acc[1] += 0 if item.outcome.ok else 1
                acc[2] += latency
                acc[3] = max(acc[3], latency)
    if not sums:
        return
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table: Table = MonitorRollup.__table__  # type: ignore[assignment]
    statement = upsert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["monitor_id", "bucket", "start"],
        set_={
            "checks": table.c.checks + statement.excluded.checks,
            "failures": table.c.failures + statement.excluded.failures,
            "latency_sum": table.c.latency_sum + statement.excluded.latency_sum,
            "latency_max": case(
                (
                    statement.excluded.latency_max > table.c.latency_max,
                    statement.excluded.latency_max,
                ),
                else_=table.c.latency_max,
            ),
        },
    )
    session.execute(
        statement,
        [
            {
                "monitor_id": monitor_id,
                "bucket": bucket,
                "start": start,
                "checks": int(acc[0]),
                "failures": int(acc[1]),
                "latency_sum": acc[2],
                "latency_max": acc[3],
            }
            for (monitor_id, bucket, start), acc in sorted(sums.items())
        ],
    )


@dataclass
class PruneSummary:
    raw: int = 0
    rollups: int = 0


def prune(
    store: Store,
    now: datetime,
    policy: RetentionPolicy,
    *,
    keep: Mapping[int, int] | None = None,
) -> PruneSummary:
    """Delete what the policy no longer keeps; the store stays bounded.

    ``keep`` caps the raw results of some monitors (their ``keep_results``);
    the others keep ``policy.raw_per_monitor``.
    """
    summary = PruneSummary()
    caps = dict(keep or {})
    with store.session() as session:
        result = session.execute(
            delete(MonitorResult).where(MonitorResult.at < now - timedelta(seconds=policy.raw))
        )
        summary.raw += result.rowcount  # type: ignore[attr-defined]
        smallest = min([policy.raw_per_monitor, *caps.values()])
        counts = session.execute(
            select(MonitorResult.monitor_id, func.count())
            .group_by(MonitorResult.monitor_id)
            .having(func.count() > smallest)
        ).all()
        over = [
            {"m": monitor, "keep": caps.get(monitor, policy.raw_per_monitor)}
            for monitor, count in counts
            if count > caps.get(monitor, policy.raw_per_monitor)
        ]
        if over:
            cap = text(
                "DELETE FROM monitor_results WHERE monitor_id = :m AND id <= ("
                " SELECT id FROM monitor_results WHERE monitor_id = :m"
                " ORDER BY id DESC LIMIT 1 OFFSET :keep)"
            )
            result = session.execute(cap, over)
            summary.raw += max(result.rowcount, 0)  # type: ignore[attr-defined]
        for bucket, seconds in (
            ("minute", policy.minute),
            ("hour", policy.hour),
            ("day", policy.day),
        ):
            result = session.execute(
                delete(MonitorRollup).where(
                    MonitorRollup.bucket == bucket,
                    MonitorRollup.start < now - timedelta(seconds=seconds),
                )
            )
            summary.rollups += result.rowcount  # type: ignore[attr-defined]
    return summary


@dataclass(frozen=True)
class Uptime:
    """Uptime of one monitor over each window, and its SLO error budget (30 d)."""

    monitor: str
    windows: dict[str, float | None]
    checks_30d: int
    failures_30d: int
    slo: float | None
    budget_remaining: float | None
    avg_latency_ms_24h: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def window_start(now: datetime, seconds: float) -> tuple[str, datetime]:
    """The bucket a window is read from and the first bucket start inside it.

    1 h reads minute buckets, longer windows hour buckets; a window starts at the
    first whole bucket after ``now - seconds``, so it never counts more than it says.
    """
    bucket = "minute" if seconds <= 3600 else "hour"
    since = bucket_start(now - timedelta(seconds=seconds), bucket) + timedelta(
        seconds=BUCKETS[bucket]
    )
    return bucket, since


def uptimes(
    session: Session, monitors: Mapping[int, tuple[str, float | None]], now: datetime
) -> dict[int, Uptime]:
    """Uptime of many monitors (id -> (name, SLO)) at once: one grouped query per window."""
    ids = list(monitors)
    sums: dict[str, dict[int, tuple[int, int, float]]] = {}
    for label, seconds in WINDOWS.items():
        bucket, since = window_start(now, seconds)
        found: dict[int, tuple[int, int, float]] = {}
        for chunk in range(0, len(ids), 5000):
            rows = session.execute(
                select(
                    MonitorRollup.monitor_id,
                    func.sum(MonitorRollup.checks),
                    func.sum(MonitorRollup.failures),
                    func.sum(MonitorRollup.latency_sum),
                )
                .where(
                    MonitorRollup.monitor_id.in_(ids[chunk : chunk + 5000]),
                    MonitorRollup.bucket == bucket,
                    MonitorRollup.start >= since,
                )
                .group_by(MonitorRollup.monitor_id)
            ).all()
            found.update({row[0]: (int(row[1]), int(row[2]), float(row[3])) for row in rows})
        sums[label] = found
    views: dict[int, Uptime] = {}
    for monitor_id, (name, slo) in monitors.items():
        windows: dict[str, float | None] = {}
        for label in WINDOWS:
            checks, failures, _latency = sums[label].get(monitor_id, (0, 0, 0.0))
            windows[label] = (checks - failures) / checks if checks else None
        checks_24h, _f, latency_24h = sums["24h"].get(monitor_id, (0, 0, 0.0))
        checks_30d, failures_30d, _l = sums["30d"].get(monitor_id, (0, 0, 0.0))
        views[monitor_id] = Uptime(
            name,
            windows,
            checks_30d,
            failures_30d,
            slo,
            error_budget(slo, checks_30d, failures_30d),
            latency_24h / checks_24h if checks_24h else None,
        )
    return views


def error_budget(slo: float | None, checks: int, failures: int) -> float | None:
    """The share of the error budget left: 1 untouched, 0 used up, below 0 overspent."""
    if slo is None or not checks:
        return None
    allowed = (1 - slo) * checks
    if allowed <= 0:
        return 1.0 if failures == 0 else 0.0
    return 1 - failures / allowed


def uptime(
    session: Session, monitor_id: int, name: str, now: datetime, *, slo: float | None = None
) -> Uptime:
    """Uptime over 1 h (minute buckets) and 24 h, 7 d, 30 d (hour buckets)."""
    return uptimes(session, {monitor_id: (name, slo)}, now)[monitor_id]
