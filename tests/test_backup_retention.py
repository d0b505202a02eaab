from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from controltower.backup.retention import keep
from controltower.spec.backup import RetentionSpec

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday


def _series(hours: list[float]) -> list[tuple[str, datetime]]:
    return [(f"b{i:03d}", START + timedelta(hours=h)) for i, h in enumerate(hours)]


class TestKeep:
    def test_hourly_keeps_newest_per_hour(self) -> None:
        """Two backups in one hour: only the newer stands for that hour."""
        items = _series([0, 0.5, 1, 1.5, 2])
        kept = keep(items, RetentionSpec(last=0, hourly=2, daily=0, weekly=0))
        assert set(kept) == {"b004", "b003"}
        assert kept["b004"] == ["newest", "hourly"]

    def test_daily_and_weekly_reach_back(self) -> None:
        """Daily keeps the last backup of each of N days; weekly of each ISO week."""
        hours = [d * 24 + h for d in range(15) for h in (3, 20)]
        items = _series(hours)
        kept = keep(items, RetentionSpec(last=0, hourly=1, daily=3, weekly=3))
        by_name = dict(items)
        days = sorted({by_name[n].date() for n, r in kept.items() if "daily" in r})
        assert days == [START.date() + timedelta(days=d) for d in (12, 13, 14)]
        weekly = sorted(by_name[n] for n, r in kept.items() if "weekly" in r)
        assert [w.isocalendar().week for w in weekly] == [10, 11, 12]
        assert all(w.hour == 20 for w in weekly)
        assert weekly[0].date() == START.date() + timedelta(days=6)

    def test_newest_always_kept(self) -> None:
        items = _series([0, 5, 9])
        assert set(keep(items, RetentionSpec(last=0, hourly=0, daily=0, weekly=0))) == {"b002"}

    def test_last_keeps_the_newest_whatever_the_hour(self) -> None:
        """``last`` keeps the N newest even when they share an hour."""
        items = _series([0, 0.25, 0.5, 0.75])
        kept = keep(items, RetentionSpec(last=3, hourly=1, daily=0, weekly=0))
        assert set(kept) == {"b001", "b002", "b003"}

    def test_empty(self) -> None:
        assert keep([], RetentionSpec()) == {}

    @given(
        st.lists(st.floats(min_value=0, max_value=24 * 60, allow_nan=False), max_size=60),
        st.integers(0, 5),
        st.integers(0, 5),
        st.integers(0, 5),
    )
    def test_bounds(self, hours: list[float], hourly: int, daily: int, weekly: int) -> None:
        """Never more than 1 + hourly + daily + weekly kept; the newest is always among them."""
        items = _series(hours)
        kept = keep(items, RetentionSpec(last=0, hourly=hourly, daily=daily, weekly=weekly))
        assert len(kept) <= 1 + hourly + daily + weekly
        if items:
            newest = max(items, key=lambda item: item[1])
            assert newest[0] in kept or any(at == newest[1] for name, at in items if name in kept)
        assert set(kept) <= {name for name, _ in items}
