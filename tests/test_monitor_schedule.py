"""Rules, maintenance windows and the scheduler: pure logic and timing behaviour."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from controltower.exceptions import MonitorError
from controltower.monitor.rules import FIRING, OK, PENDING, alert_status, failing_dependency
from controltower.monitor.scheduler import Scheduler, jitter_offset, percentile
from controltower.monitor.silences import matches, parse_matchers, window_active
from controltower.spec.alerts import MaintenanceSpec
from controltower.spec.monitors import MonitorSpec

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class State:
    failing_since: datetime | None = None
    recovered_since: datetime | None = None


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class TestAlertStatus:
    def test_states(self) -> None:
        """ok without failure; pending until `for`; firing after; ok after keep_firing_for."""
        rule = MonitorSpec(name="m", type="heartbeat", **{"for": 60, "keep_firing_for": 120})
        assert alert_status(rule, State(), at(0)) == OK
        assert alert_status(rule, State(at(0)), at(30)) == PENDING
        assert alert_status(rule, State(at(0)), at(60)) == FIRING
        assert alert_status(rule, State(at(0), at(90)), at(100)) == FIRING
        assert alert_status(rule, State(at(0), at(90)), at(210)) == OK

    def test_recovery_while_pending_is_ok(self) -> None:
        """A monitor that recovers before `for` elapsed never fired, so it is simply ok."""
        rule = MonitorSpec(name="m", type="heartbeat", **{"for": 60, "keep_firing_for": 600})
        assert alert_status(rule, State(at(0), at(30)), at(31)) == OK

    def test_transitive_dependency(self) -> None:
        """A monitor is blocked by any monitor it depends on, directly or through another."""
        app = MonitorSpec(name="app", type="heartbeat", depends_on=["api"])
        depends = {"app": ["api"], "api": ["db"], "db": []}
        assert failing_dependency(app, {"db"}, depends) == "db"
        assert failing_dependency(app, set(), depends) is None


class TestMatchers:
    def test_matching(self) -> None:
        """Every matcher must equal the label; a trailing * matches a prefix."""
        labels = {"service": "shop", "monitor": "api-eu", "severity": "critical"}
        assert matches({"monitor": "api-eu"}, labels)
        assert matches({"monitor": "api-*", "severity": "critical"}, labels)
        assert not matches({"monitor": "web"}, labels)
        assert not matches({"team": "x"}, labels)
        assert matches({}, labels)

    def test_parse(self) -> None:
        """key=value items parse; anything else is a usage error."""
        assert parse_matchers(["monitor=api", "severity = critical"]) == {
            "monitor": "api",
            "severity": "critical",
        }
        from controltower.exceptions import UsageError

        with pytest.raises(UsageError):
            parse_matchers(["monitor"])


class TestMaintenanceWindows:
    def test_cron(self) -> None:
        """A cron window is active for `duration` after each occurrence."""
        window = MaintenanceSpec(cron="0 3 * * *", duration=3600)
        assert window_active(window, datetime(2026, 3, 2, 3, 30, tzinfo=UTC))
        assert window_active(window, datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
        assert not window_active(window, datetime(2026, 3, 2, 4, 0, tzinfo=UTC))

    def test_weekdays_in_a_timezone(self) -> None:
        """Weekday windows apply in their timezone, including past midnight."""
        window = MaintenanceSpec(
            weekdays=["sun"], start="23:00", duration=7200, timezone="Europe/Paris"
        )
        # Sunday 23:30 in Paris (UTC+1 in March before DST) is 22:30 UTC.
        assert window_active(window, datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
        # Monday 00:30 Paris, still inside the two hours.
        assert window_active(window, datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
        assert not window_active(window, datetime(2026, 3, 2, 1, 30, tzinfo=UTC))

    def test_bad_timezone(self) -> None:
        """An unknown timezone is refused at load, and by the window check if it gets past."""
        with pytest.raises(ValidationError, match="IANA time zone"):
            MaintenanceSpec(name="w", cron="0 3 * * *", timezone="Mars/Base")
        window = MaintenanceSpec.model_construct(
            name="w", cron="", weekdays=[], start="03:00", duration=60.0, timezone="Mars/Base"
        )
        with pytest.raises(MonitorError, match="timezone"):
            window_active(window, T0)


class TestScheduler:
    def test_jitter_is_stable_and_in_range(self) -> None:
        """Jitter offsets are the same every run and within the interval."""
        offsets = [jitter_offset(f"m{i}", 30) for i in range(100)]
        assert offsets == [jitter_offset(f"m{i}", 30) for i in range(100)]
        assert all(0 <= o < 30 for o in offsets) and len(set(offsets)) > 50

    async def test_beat_is_independent_of_check_duration(self) -> None:
        """A check that takes most of its interval does not stretch the beat."""
        starts: list[float] = []
        loop = asyncio.get_running_loop()

        async def slow(key: int, due: float) -> None:
            starts.append(loop.time())
            await asyncio.sleep(0.15)

        scheduler = Scheduler(slow)
        scheduler.add(1, 0.2, loop.time())
        await asyncio.sleep(1.05)
        await scheduler.stop()
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert len(starts) >= 5
        assert sum(gaps) / len(gaps) == pytest.approx(0.2, abs=0.03)

    async def test_slow_check_does_not_delay_others(self) -> None:
        """A check stuck for seconds neither blocks other monitors nor piles up on itself."""
        counts = {1: 0, 2: 0}

        async def run(key: int, due: float) -> None:
            counts[key] += 1
            if key == 1:
                await asyncio.sleep(5)

        loop = asyncio.get_running_loop()
        scheduler = Scheduler(run)
        scheduler.add(1, 0.1, loop.time())
        scheduler.add(2, 0.1, loop.time())
        await asyncio.sleep(1.0)
        await scheduler.stop()
        assert counts[1] == 1
        assert counts[2] >= 8
        assert scheduler.skipped >= 8

    async def test_concurrency_is_bounded(self) -> None:
        """No more than `concurrency` checks run at once."""
        running = peak = 0

        async def run(key: int, due: float) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1

        loop = asyncio.get_running_loop()
        scheduler = Scheduler(run, concurrency=3)
        for key in range(20):
            scheduler.add(key, 10, loop.time())
        await asyncio.sleep(0.6)
        await scheduler.stop()
        assert peak == 3 and scheduler.started == 20

    async def test_finished_checks_leave_nothing_behind(self) -> None:
        """Once its checks are done a monitor holds no task, only its next timer."""
        done: list[int] = []

        async def run(key: int, due: float) -> None:
            done.append(key)

        loop = asyncio.get_running_loop()
        scheduler = Scheduler(run)
        for key in range(50):
            scheduler.add(key, 10, loop.time())
        await asyncio.sleep(0.2)
        assert sorted(done) == list(range(50))
        assert scheduler._tasks == set()
        assert not any(entry.running for entry in scheduler._entries.values())
        await scheduler.stop()

    def test_percentile(self) -> None:
        """Percentiles pick the nearest rank."""
        assert percentile([], 0.99) == 0
        assert percentile([float(i) for i in range(101)], 0.99) == 99
