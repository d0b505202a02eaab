"""Files written by `tower generate` pass `tower check` at gate 2 with no finding at all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controltower.spec.detect import detect
from controltower.spec.presets import render

# Values of the right shape for every variable the presets declare: the gate
# judges the generated files, so the environment itself must be in order.
ENVIRONMENT = {
    "NEXT_PUBLIC_SITE_URL": "https://shop.example.com",
    "NEXT_PUBLIC_SUPABASE_URL": "https://qwertyuiopasdfghjklz.supabase.co",
    "NEXT_PUBLIC_SUPABASE_ANON_KEY": "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlMQ",
    "SUPABASE_SERVICE_ROLE_KEY": "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZSJ9.c2lnbmF0dXJlMg",
    "SUPABASE_DB_PASSWORD": "Vq8rT2mZk4LpX7wN",
    "SUPABASE_PROJECT_ID": "qwertyuiopasdfghjklz",
    "NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY": "pk_live_51Hq8rT2mZk4LpX7wNb3Yc9",
    "STRIPE_SECRET_KEY": "sk_live_51Hq8rT2mZk4LpX7wNb3Yc9dF",
    "STRIPE_WEBHOOK_SECRET": "whsec_Hq8rT2mZk4LpX7wNb3Yc9dF1gH",
    "RESEND_API_KEY": "re_Hq8rT2mZ_k4LpX7wNb3Yc9dF1",
    "NEXT_PUBLIC_POSTHOG_KEY": "phc_Hq8rT2mZk4LpX7wNb3Yc9dF1gH",
    "NEXT_PUBLIC_POSTHOG_HOST": "https://eu.i.posthog.com",
    "DATABASE_URL": "postgresql://app:Vq8rT2mZk4LpX7wN@db.internal:5432/app",
}


def _nextjs(folder: Path) -> None:
    (folder / "package.json").write_text(
        json.dumps({"name": "shop", "dependencies": {"next": "15.0.3", "react": "19.0.0"}})
    )
    (folder / "package-lock.json").write_text("{}")
    (folder / "prisma").mkdir()
    (folder / "prisma" / "schema.prisma").write_text('datasource db { provider = "postgresql" }\n')


def _python(folder: Path) -> None:
    (folder / "requirements.txt").write_text("starlette==0.41.3\nuvicorn==0.32.1\n")
    (folder / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")


def _app(folder: Path, preset: str, target: str) -> Path:
    """A repository as `tower init` leaves it: the app's own files and tower.toml."""
    (_nextjs if preset == "nextjs-fly" else _python)(folder)
    text = render(preset, detect(folder))
    text = re.sub(r'^target = "\w+"', f'target = "{target}"', text, count=1, flags=re.M)
    if target == "fly":
        text = text.replace('driver = "local"', 'driver = "fly"')
    path = folder / "tower.toml"
    path.write_text(text)
    return path


def _tower(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    environ.update(ENVIRONMENT)
    return subprocess.run(
        [sys.executable, "-m", "controltower", *args, "--spec", str(folder / "tower.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env=environ,
    )


def _report(folder: Path) -> dict[str, Any]:
    done = _tower(
        folder, "check", "--static", "--gate", "2", "--env", "production", "--no-store",
        "--format", "json",
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    report["exit"] = done.returncode
    return report


def _not_passed(report: dict[str, Any]) -> list[str]:
    # A dependency audit that could not reach its advisory service judges the app's
    # pinned packages, not the generated files; a real advisory would still show.
    return [
        f"{f['id']} ({f['status']}): {f['message']}"
        for f in report["findings"]
        if f["status"] not in ("pass", "skip")
        and not (f["id"] == "deps.vulnerabilities" and f["message"].startswith("not run:"))
    ]


class TestRoundTrip:
    @pytest.mark.parametrize(
        ("preset", "target", "expected"),
        [
            (
                "nextjs-fly",
                "fly",
                {
                    "fly.toml",
                    "Dockerfile",
                    ".github/workflows/tower.yml",
                    ".env.example",
                    # no tsconfig.json: a JavaScript app gets JavaScript files
                    "app/api/health/route.js",
                    "app/api/health/live/route.js",
                    "app/metrics/route.js",
                    "next.config.mjs",
                    "middleware.js",
                    "instrumentation.js",
                    "app/web-vitals.jsx",
                },
            ),
            (
                "python-asgi",
                "fly",
                {"fly.toml", "Dockerfile", ".github/workflows/tower.yml", ".env.example"},
            ),
            (
                "python-asgi",
                "docker",
                {"Dockerfile", ".dockerignore", ".github/workflows/tower.yml", ".env.example"},
            ),
        ],
    )
    def test_generated_files_pass_gate_2(
        self, preset: str, target: str, expected: set[str], tmp_path: Path
    ) -> None:
        """Generated with --write, every check of the repository passes: gate 2 is GO, no finding."""
        _app(tmp_path, preset, target)
        before = _report(tmp_path)
        if target == "fly":
            assert before["exit"] == 1
            assert "fly.config (fail)" in " ".join(_not_passed(before))

        written = _tower(tmp_path, "generate", "all", "--write", "--env", "production")
        assert written.returncode == 0, written.stdout + written.stderr
        assert {
            str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
        } >= expected

        after = _report(tmp_path)
        assert _not_passed(after) == []
        assert after["exit"] == 0
        assert after["gates"]["1"]["passed"] and after["gates"]["2"]["passed"]
        assert after["gates"]["3"]["passed"]
        passed = {f["id"] for f in after["findings"] if f["status"] == "pass"}
        assert len(passed) > len([f for f in before["findings"] if f["status"] == "pass"])
        judged = {name.split(".")[0] for name in passed}
        assert {"docker", "env"} <= judged
        assert {"docker.user", "docker.init", "docker.healthcheck", "docker.base_pinned"} <= passed
        if target == "fly":
            assert "fly" in judged
        if preset == "nextjs-fly":
            assert "next" in judged

    def test_a_broken_file_is_caught(self, tmp_path: Path) -> None:
        """The round trip can fail: a generated file edited back to a bad value is reported."""
        _app(tmp_path, "nextjs-fly", "fly")
        assert _tower(tmp_path, "generate", "all", "--write", "--env", "production").returncode == 0
        fly = tmp_path / "fly.toml"
        fly.write_text(fly.read_text().replace("force_https = true", "force_https = false"))
        config = tmp_path / "next.config.mjs"
        config.write_text(config.read_text().replace("poweredByHeader: false", ""))
        after = _report(tmp_path)
        assert after["exit"] == 1
        assert {f.split(" ", 1)[0] for f in _not_passed(after)} == {
            "fly.force_https",
            "next.powered_by",
        }
