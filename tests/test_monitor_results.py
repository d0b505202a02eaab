"""Results, rollups, uptime windows, SLO error budgets and retention, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from controltower.monitor.probes import CheckOutcome
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import ResultWriter, RetentionPolicy, prune, uptime
from controltower.spec.store import StoreSpec
from controltower.store import Store
from controltower.store.models import MonitorResult, MonitorRollup, MonitorState
from tests.monitor_support import spec_from

NOW = datetime(2026, 3, 31, 12, 0, 30, tzinfo=UTC)
SPEC = '[service]\nname = "shop"\n[[monitors]]\nname = "api"\nurl = "http://127.0.0.1:9/"\nslo = "99%"\n'


def feed(store: Store, monitor_id: int, times: list[tuple[datetime, bool]]) -> None:
    writer = ResultWriter(store, worker="w1")
    for at, ok in times:
        outcome = CheckOutcome(
            "api", at, "ok" if ok else "critical", 0.02, {}, error="" if ok else "down"
        )
        writer.add(monitor_id, outcome, failure_threshold=2)
    writer.flush()


class TestRollups:
    def test_counters_and_rollups(self, store: Store) -> None:
        """A batch moves the counters and adds to minute, hour and day buckets."""
        _service, ids = sync_monitors(store, spec_from(SPEC))
        feed(store, ids["api"], [(NOW, False), (NOW + timedelta(seconds=1), False)])
        with store.session() as session:
            state = session.get(MonitorState, ids["api"])
            assert state is not None
            assert state.consecutive_failures == 2 and state.failing_since is not None
            rollups = session.scalars(select(MonitorRollup).order_by(MonitorRollup.bucket)).all()
        assert [(r.bucket, r.checks, r.failures) for r in rollups] == [
            ("day", 2, 2),
            ("hour", 2, 2),
            ("minute", 2, 2),
        ]
        feed(store, ids["api"], [(NOW + timedelta(seconds=2), True)])
        with store.session() as session:
            minute = session.scalar(select(MonitorRollup).where(MonitorRollup.bucket == "minute"))
            state = session.get(MonitorState, ids["api"])
        assert minute is not None and (minute.checks, minute.failures) == (3, 2)
        assert state is not None and state.consecutive_failures == 0
        assert state.recovered_since is not None


class TestUptime:
    def test_windows_and_error_budget(self, store: Store) -> None:
        """Uptime per window comes from rollups; the 30 d error budget follows the SLO."""
        _service, ids = sync_monitors(store, spec_from(SPEC))
        checks = []
        for minute in range(0, 20 * 24 * 60, 30):
            at = NOW - timedelta(minutes=minute)
            checks.append((at, not (minute < 60 and minute % 60 == 0) and minute != 3000))
        feed(store, ids["api"], checks)
        with store.session() as session:
            result = uptime(session, ids["api"], "api", NOW, slo=0.99)
        total = len(checks)
        assert result.checks_30d == total
        assert result.failures_30d == 2
        assert result.windows["1h"] is not None and result.windows["1h"] < 1.0
        assert result.windows["7d"] is not None and result.windows["7d"] > 0.99
        assert result.budget_remaining is not None
        assert abs(result.budget_remaining - (1 - 2 / (0.01 * total))) < 1e-9


class TestRetention:
    def test_prune_bounds_the_store(self, store: Store) -> None:
        """Old raw results and rollups go; at most raw_per_monitor raw results stay per monitor."""
        _service, ids = sync_monitors(store, spec_from(SPEC))
        old = NOW - timedelta(days=10)
        feed(store, ids["api"], [(old + timedelta(seconds=i), True) for i in range(5)])
        feed(store, ids["api"], [(NOW - timedelta(seconds=i), True) for i in range(30)])
        policy = RetentionPolicy.from_spec(StoreSpec(), raw_per_monitor=20)
        summary = prune(store, NOW, policy)
        with store.session() as session:
            raw = session.scalar(select(func.count()).select_from(MonitorResult))
            minutes = session.scalar(
                select(func.count())
                .select_from(MonitorRollup)
                .where(MonitorRollup.bucket == "minute")
            )
            days = session.scalar(
                select(func.count()).select_from(MonitorRollup).where(MonitorRollup.bucket == "day")
            )
        assert raw == 20
        assert summary.raw == 15
        assert minutes == 1
        assert days == 2

    def test_policy_from_store_spec(self) -> None:
        """Minutes are kept for the 1 h window and hours for the 30 d window, whatever [store] says."""
        policy = RetentionPolicy.from_spec(StoreSpec())
        assert policy.minute == 2 * 3600
        assert policy.hour >= 31 * 86400
        assert policy.raw == StoreSpec().retention_raw
