"""Check runs in the store, on SQLite and PostgreSQL, and `tower check` end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controltower.checks import CheckContext, run_checks, select
from controltower.checks.history import findings_of, history, save_run
from controltower.cli.main import app
from controltower.exceptions import TowerError
from controltower.spec import load_spec
from controltower.store import Store
from controltower.testing import FakeClock

FIXTURE = Path(__file__).parent / "fixtures" / "plan_mistakes"


class TestHistory:
    def test_save_and_trend(self, store: Store) -> None:
        """Runs are stored with scores, gates and findings, and read back oldest first."""
        spec = load_spec(FIXTURE / "tower.toml", env="production")
        clock = FakeClock(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
        ids = []
        for _ in range(3):
            ctx = CheckContext(spec=spec, root=FIXTURE, environment="production", clock=clock)
            run = asyncio.run(run_checks(ctx, select(kinds=("static",))))
            save_run(store, run)
            ids.append(run.id)
            clock.advance(3600)
        entries = history(store, "shop", "production")
        assert [e.id for e in entries] == ids
        assert entries[0].overall == run.score.overall and entries[0].gates["1"]["passed"] is False
        assert entries[0].started_at.tzinfo is not None
        stored = findings_of(store, ids[0])
        assert {f["id"] for f in stored} >= {"fly.release_command", "env.client_secret"}
        assert "sk_test_fixture" not in repr(stored)
        assert history(store, "shop", "production", limit=2)[0].id == ids[1]


class TestDeployGateRuns:
    def test_deploy_gate_runs_stay_out_of_readiness_history(self, store: Store) -> None:
        """A deploy's gate run is stored as kind deploy-gate and the readiness history, the
        API list and the dashboard score leave it out."""
        from controltower.dashboard.data import readiness
        from controltower.deploy.gates import run_gates
        from controltower.store.models.checks import CheckRunRow

        spec = load_spec(FIXTURE / "tower.toml", env="production")
        ctx = CheckContext(spec=spec, root=FIXTURE, environment="production")
        run = asyncio.run(run_checks(ctx, select(kinds=("static",))))
        save_run(store, run)
        gated = spec.model_copy(update={"deploy": spec.deploy.model_copy(update={"gates": [1]})})
        outcome = run_gates(gated, root=FIXTURE, store=store)
        assert not outcome.passed and outcome.run_id
        with store.session() as session:
            assert session.get(CheckRunRow, outcome.run_id).kind == "deploy-gate"  # type: ignore[union-attr]
            assert session.get(CheckRunRow, run.id).kind == "readiness"  # type: ignore[union-attr]
        assert [e.id for e in history(store, "shop", "production")] == [run.id]
        dashboard = readiness(store)
        assert len(dashboard["runs"]) == 1 and dashboard["latest"]["score"] == run.score.overall


class TestCli:
    def test_exit_codes_and_formats(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """--gate 2 exits 1 on the plan mistakes; without --gate it reports and exits 0; bad spec exits 2."""
        repo = tmp_path / "repo"
        shutil.copytree(FIXTURE, repo)
        monkeypatch.setenv("TOWER_DATABASE_URL", f"sqlite:///{tmp_path / 'tower.db'}")
        runner = CliRunner()
        spec = ["--spec", str(repo / "tower.toml")]
        result = runner.invoke(app, ["check", *spec, "--static", "--gate", "2"])
        assert result.exit_code == 1, result.output
        assert "gate 2 production readiness: NO-GO" in result.output
        result = runner.invoke(app, ["check", *spec, "--static"])
        assert result.exit_code == 0, result.output
        out = tmp_path / "report.sarif"
        result = runner.invoke(
            app,
            ["check", *spec, "--static", "--format", "sarif", "--output", str(out), "--no-store"],
        )
        assert json.loads(out.read_text())["version"] == "2.1.0"
        result = runner.invoke(app, ["check", *spec, "--history", "--format", "json"])
        assert len(json.loads(result.output)) == 2
        result = runner.invoke(app, ["check", *spec, "--only", "nothing.here"])
        assert isinstance(result.exception, TowerError) and result.exception.exit_code == 2
        (repo / "tower.toml").write_text("[service]\nname = 'x'\nbogus = 1\n")
        result = runner.invoke(app, ["check", *spec])
        assert isinstance(result.exception, TowerError) and result.exception.exit_code == 2

    def test_list(self) -> None:
        """--list prints every check with its gate and targets."""
        result = CliRunner().invoke(app, ["check", "--list", "--format", "json"])
        rows = {r["id"]: r for r in json.loads(result.output)}
        assert rows["docker.init"]["advice_on"] == ["fly"] and rows["fly.memory"]["gate"] == 1

    def test_progress_and_history_trend(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--progress writes one line per check to stderr; --history shows each run and the trend."""
        repo = tmp_path / "repo"
        shutil.copytree(FIXTURE, repo)
        monkeypatch.setenv("TOWER_DATABASE_URL", f"sqlite:///{tmp_path / 'tower.db'}")
        runner = CliRunner()
        spec = ["--spec", str(repo / "tower.toml")]
        result = runner.invoke(app, ["check", *spec, "--static", "--progress", "--format", "json"])
        total = len(json.loads(result.stdout)["findings"])
        progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
        assert progress and progress[-1].startswith(f"[{len(progress)}/{len(progress)}] ")
        assert len(progress) <= total and "running" in result.stderr.splitlines()[0]
        fly = (repo / "fly.toml").read_text()
        (repo / "fly.toml").write_text(
            fly.replace('"npm run build"', '"npx prisma migrate deploy"')
        )
        runner.invoke(app, ["check", *spec, "--static", "--no-progress"])
        result = runner.invoke(app, ["check", *spec, "--history"])
        rows = [line for line in result.stdout.splitlines() if "NO-GO" in line or " GO " in line]
        assert len(rows) == 2 and "▲" in rows[1], result.stdout
        assert "readiness of shop" in result.stdout
