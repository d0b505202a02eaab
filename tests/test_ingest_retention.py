from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from controltower.ingest.retention import prune_events, wanted
from controltower.spec import load_spec
from controltower.store import Store
from controltower.store.models.ingest import CspReport, ErrorEvent, ErrorIssue, Project
from controltower.testing import FakeClock

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _spec(tmp_path: Path, extra: str = "") -> object:
    path = tmp_path / "tower.toml"
    path.write_text(
        '[service]\nname = "shop"\n\n[server]\nevents_keep = "7d"\n\n'
        '[[server.projects]]\nname = "web"\n\n'
        f'[[server.projects]]\nname = "api"\nevents_keep = "30d"\n{extra}'
    )
    return load_spec(path, environ={})


def _fill(store: Store, project: str, ages_days: list[float]) -> None:
    with store.session() as session:
        row = Project(name=project, public_key=f"key-{project}")
        session.add(row)
        session.flush()
        issue = ErrorIssue(
            project_id=row.id, fingerprint="f" * 64, title="boom", count=len(ages_days)
        )
        session.add(issue)
        session.flush()
        for index, age in enumerate(ages_days):
            at = NOW - timedelta(days=age)
            session.add(
                ErrorEvent(
                    project_id=row.id,
                    issue_id=issue.id,
                    event_id=f"{project[:3]}{index:029d}",
                    timestamp=at,
                    received_at=at,
                    level="error",
                )
            )
        session.add(
            CspReport(
                project_id=row.id,
                directive="script-src",
                blocked_uri="inline",
                last_seen=NOW - timedelta(days=60),
            )
        )


class TestEventRetention:
    def test_events_older_than_their_project_window_go_in_batches(
        self, store: Store, tmp_path: Path
    ) -> None:
        """Each project keeps its own window; deletion runs in batches; issues stay."""
        spec = _spec(tmp_path)
        ages = [i * 0.5 for i in range(120)]  # 0 to 59.5 days
        _fill(store, "web", ages)
        _fill(store, "api", ages)
        pruned = prune_events(spec, store, clock=FakeClock(NOW), batch=10)  # type: ignore[arg-type]
        with store.session() as session:
            left = dict(
                session.execute(
                    select(Project.name, func.count(ErrorEvent.id))
                    .join(ErrorEvent, ErrorEvent.project_id == Project.id)
                    .group_by(Project.name)
                ).all()
            )
            issues = session.scalar(select(func.count(ErrorIssue.id)))
            csp = session.scalar(select(func.count(CspReport.id)))
        assert left == {"web": sum(a <= 7 for a in ages), "api": sum(a <= 30 for a in ages)}
        assert pruned.events == 2 * len(ages) - left["web"] - left["api"]
        assert pruned.batches >= pruned.events // 10
        assert issues == 2 and csp == 0 and pruned.csp_reports == 2

    def test_zero_keeps_forever(self, store: Store, tmp_path: Path) -> None:
        """events_keep = "0s" turns retention off."""
        path = tmp_path / "tower.toml"
        path.write_text('[service]\nname = "shop"\n\n[server]\nevents_keep = "0s"\n')
        spec = load_spec(path, environ={})
        assert not wanted(spec)
        _fill(store, "web", [400.0])
        assert prune_events(spec, store, clock=FakeClock(NOW)).events == 0
