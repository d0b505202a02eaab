"""Results, rollups, uptime windows, SLO error budgets and retention, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from controltower.monitor.probes import CheckOutcome
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import (
    ResultWriter,
    RetentionPolicy,
    error_budget,
    prune,
    uptime,
    uptimes,
)
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

    def test_keep_results_caps_each_monitor(self, store: Store) -> None:
        """A monitor's keep_results caps its raw results; the others keep the policy's number."""
        spec = spec_from(SPEC + '[[monitors]]\nname = "web"\nurl = "http://127.0.0.1:9/"\n')
        _service, ids = sync_monitors(store, spec)
        for name in ("api", "web"):
            feed(store, ids[name], [(NOW - timedelta(seconds=i), True) for i in range(11, -1, -1)])
        prune(store, NOW, RetentionPolicy(raw_per_monitor=10), keep={ids["api"]: 3})
        with store.session() as session:
            counts = dict(
                session.execute(
                    select(MonitorResult.monitor_id, func.count()).group_by(
                        MonitorResult.monitor_id
                    )
                ).all()
            )
            newest = session.scalars(
                select(MonitorResult.at)
                .where(MonitorResult.monitor_id == ids["api"])
                .order_by(MonitorResult.at.desc())
            ).all()
        assert counts == {ids["api"]: 3, ids["web"]: 10}
        assert newest[0] == NOW and len(newest) == 3

    def test_policy_from_store_spec(self) -> None:
        """[store] retention is used as given above the floors the uptime windows need."""
        policy = RetentionPolicy.from_spec(StoreSpec())
        assert (policy.raw, policy.minute, policy.hour, policy.day) == (
            7 * 86400,
            2 * 3600,
            35 * 86400,
            400 * 86400,
        )
        longer = RetentionPolicy.from_spec(
            StoreSpec(retention_minute=86400, retention_hour=90 * 86400, retention_raw=3600)
        )
        assert (longer.raw, longer.minute, longer.hour) == (3600, 86400, 90 * 86400)
        floored = RetentionPolicy.from_spec(StoreSpec(retention_minute=60, retention_hour=3600))
        assert (floored.minute, floored.hour) == (2 * 3600, 31 * 86400)


class TestErrorBudget:
    def test_budget(self) -> None:
        """Budget left is 1 untouched, 0 used up, negative overspent, None without an SLO or data."""
        assert error_budget(0.99, 1000, 0) == 1.0
        assert error_budget(0.99, 1000, 5) == pytest.approx(0.5)
        assert error_budget(0.99, 1000, 10) == pytest.approx(0.0)
        assert error_budget(0.99, 1000, 20) == pytest.approx(-1.0)
        assert error_budget(None, 1000, 5) is None
        assert error_budget(0.99, 0, 0) is None
        assert error_budget(1.0, 10, 0) == 1.0 and error_budget(1.0, 10, 1) == 0.0

    def test_many_monitors_at_once(self, store: Store) -> None:
        """uptimes() gives each monitor its own windows from one query per window."""
        spec = spec_from(SPEC + '[[monitors]]\nname = "web"\nurl = "http://127.0.0.1:9/"\n')
        _service, ids = sync_monitors(store, spec)
        feed(store, ids["api"], [(NOW - timedelta(minutes=m), m % 4 != 0) for m in range(40)])
        feed(store, ids["web"], [(NOW - timedelta(days=3, minutes=m), True) for m in range(10)])
        with store.session() as session:
            found = uptimes(session, {ids["api"]: ("api", 0.9), ids["web"]: ("web", None)}, NOW)
        api, web = found[ids["api"]], found[ids["web"]]
        assert api.windows["1h"] == pytest.approx(0.75)
        assert api.budget_remaining == pytest.approx(1 - 10 / (0.1 * 40))
        assert web.windows["1h"] is None and web.windows["24h"] is None
        assert web.windows["7d"] == 1.0 and web.checks_30d == 10
