"""Stored load runs: saving, baselines and finding what to compare with (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from controltower.load.history import find_reference, redact_target, save_run
from controltower.store import Store
from controltower.store.models.core import AuditEvent


def _save(
    store: Store, *, baseline: bool = False, interrupted: bool = False, p95: float = 0.1
) -> int:
    return save_run(
        store,
        service="shop",
        environment="staging",
        url="https://user:secret@shop.test/app?token=abc",
        model="open",
        passed=True,
        interrupted=interrupted,
        aborted="",
        summary={"summary": {"p95": p95}},
        sample=[1000, 2000, 3000],
        baseline=baseline,
    )


class TestHistory:
    def test_a_run_is_stored_with_its_sample_and_without_secrets(self, store: Any) -> None:
        """The URL loses user, password and query; the sample and summary come back as stored."""
        run = _save(store)
        found = find_reference(store, service="shop", environment="staging", which="previous")
        assert found is not None and found.id == run
        assert found.sample == [1000, 2000, 3000]
        assert found.summary == {"summary": {"p95": 0.1}}
        with store.session() as session:
            from controltower.store.models.load import LoadRun

            row = session.get(LoadRun, run)
            assert row is not None and row.url == "https://shop.test/app"
            assert session.query(AuditEvent).filter_by(action="load.run").count() == 1

    def test_one_baseline_at_a_time(self, store: Any) -> None:
        """Saving a new baseline replaces the old one; plain runs leave it alone."""
        first = _save(store, baseline=True)
        second = _save(store, baseline=True)
        _save(store)
        baseline = find_reference(store, service="shop", environment="staging", which="baseline")
        assert baseline is not None and baseline.id == second and baseline.id != first

    def test_previous_skips_interrupted_runs_and_the_current_one(self, store: Any) -> None:
        """'previous' is the newest complete run before the one being compared."""
        complete = _save(store, p95=0.2)
        _save(store, interrupted=True)
        current = _save(store)
        found = find_reference(
            store, service="shop", environment="staging", which="previous", before=current
        )
        assert found is not None and found.id == complete

    def test_nothing_to_compare_with(self, store: Any) -> None:
        """With no runs there is no reference, and other services' runs do not count."""
        _save(store, baseline=True)
        assert (
            find_reference(store, service="other", environment="staging", which="baseline") is None
        )

    def test_redact_target(self) -> None:
        """Credentials and query strings never reach the store."""
        assert redact_target("http://a:b@h:81/x?y=1#z") == "http://h:81/x"
