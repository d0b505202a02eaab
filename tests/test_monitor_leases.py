"""Row leases that share monitors between workers, on SQLite and PostgreSQL, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

from controltower.monitor.leases import MonitorLeases
from controltower.monitor.registry import sync_monitors
from controltower.store import Store
from controltower.testing import FakeClock
from tests.monitor_support import spec_from

NAMES = [f"m{index}" for index in range(6)]
SPEC = '[service]\nname = "shop"\n' + "".join(
    f'[[monitors]]\nname = "{name}"\ntype = "heartbeat"\n' for name in NAMES
)


def setup(store: Store) -> tuple[set[int], FakeClock, MonitorLeases, MonitorLeases]:
    service, ids = sync_monitors(store, spec_from(SPEC))
    clock = FakeClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    a = MonitorLeases(store, service, "a", ttl=15, handoff=1, clock=clock)
    b = MonitorLeases(store, service, "b", ttl=15, handoff=1, clock=clock)
    return set(ids.values()), clock, a, b


class TestSharing:
    def test_one_worker_holds_everything(self, store: Store) -> None:
        """Alone, a worker claims every monitor."""
        ids, _clock, a, _b = setup(store)
        assert a.sync(ids) == ids

    def test_two_workers_split_after_the_handoff(self, store: Store) -> None:
        """A second worker gets half once the first gives it back and the hand-off passes."""
        ids, clock, a, b = setup(store)
        a.sync(ids)
        assert b.sync(ids) == set()  # a still holds everything
        kept = a.sync(ids)  # sees b, keeps its share, gives back the rest
        assert len(kept) == 3
        assert b.sync(ids) == set()  # given back, but not claimable yet
        clock.advance(1.5)
        taken = b.sync(ids)
        assert len(taken) == 3 and taken.isdisjoint(kept) and taken | kept == ids
        assert a.sync(ids) == kept and b.sync(ids) == taken

    def test_dead_worker_is_taken_over(self, store: Store) -> None:
        """A worker that stops renewing loses its monitors to the others after the ttl."""
        ids, clock, a, b = setup(store)
        a.sync(ids)
        b.sync(ids)
        a.sync(ids)
        clock.advance(1.5)
        b.sync(ids)
        clock.advance(10)
        assert len(b.sync(ids)) == 3  # a is silent but not expired yet
        clock.advance(6)
        assert b.sync(ids) == ids

    def test_dropped_monitors_are_given_back(self, store: Store) -> None:
        """A monitor no longer in the spec is released; the rest stay held."""
        ids, _clock, a, _b = setup(store)
        a.sync(ids)
        smaller = set(sorted(ids)[:4])
        assert a.sync(smaller) == smaller

    def test_release_frees_at_once(self, store: Store) -> None:
        """A clean shutdown hands everything back without waiting for expiry."""
        ids, _clock, a, b = setup(store)
        a.sync(ids)
        a.release()
        assert b.sync(ids) == ids
