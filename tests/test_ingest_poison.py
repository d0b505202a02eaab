"""A poisoned run through a real ``tower serve``, SIGTERM mid-backlog, then a restart.

The scaled-down version of ``benchmarks/ingest/poison.py`` (which runs 20,000
events per store and records the accepted rate with and without poison): 800
events, 1% carrying every poison shape, on SQLite and PostgreSQL. Every event
answered 200 is afterwards in the store or in the dead letters (0 dropped), what
the stop could not write in time was spooled and replayed by the restart, the restarted
server's accounting identity balances, and reading every issue's events through
the API answers no 5xx.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.ingest.poison import POISON, event_body, poisoned_run

from controltower.ingest.limits import IngestLimits, load_object

pytestmark = [pytest.mark.slow]


class TestPoisonedRun:
    def test_sigterm_mid_backlog_loses_nothing(self, store_url: str, tmp_path: Path) -> None:
        """accepted == stored + dead_lettered after SIGTERM and restart; no 5xx reading."""
        outcome = poisoned_run(
            store_url, tmp_path / "run", events=800, poisoned=True, concurrency=8, share=50
        )
        assert outcome.refused == {}, outcome
        assert outcome.accepted == 800
        assert outcome.dropped == 0, outcome
        assert outcome.stored + outcome.dead_lettered == outcome.accepted, outcome
        # Whatever the stop did not write in time it spooled, and the restart replayed it
        # (tests/test_ingest_writer.py forces the spool path; here the machine's speed decides).
        assert outcome.replayed == outcome.spooled, outcome
        assert outcome.unaccounted == 0, outcome
        assert outcome.read_errors == 0, outcome
        assert outcome.events_read >= outcome.stored, outcome
        assert "error events received" in outcome.first_summary


class TestPoisonShapes:
    @pytest.mark.parametrize("poison", POISON, ids=range(len(POISON)))
    def test_every_shape_is_accepted_as_storable(self, poison: bytes) -> None:
        """Each poison shape reads as an object within the default caps (so it is 200)."""
        value = load_object(event_body("ValueError", "0" * 32, poison), IngestLimits(), "event")
        assert isinstance(value, dict)
