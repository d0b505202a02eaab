"""`tower init` on the real Next.js fixture app, then `tower check`: the spec holds only what the
app uses, and no finding speaks of a variable, route or platform the app does not use."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from controltower.spec.detect import detect
from tests.nextjs_support import FIXTURE
from tests.test_generate_corpus import tower

# What the fixture app does not use: a platform, services, and their variables.
UNUSED = re.compile(
    r"\bfly\b|fly\.dev|fly secrets|flyctl|stripe|supabase|resend|posthog|DATABASE_URL|"
    r"pip-audit|prometheus_client|appkit",
    re.IGNORECASE,
)


def initialised(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the fixture's sources with `tower init` run in it."""
    folder = tmp_path / "app"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("node_modules", ".next"))
    done = tower(folder, "init", ".", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, json.loads(done.stdout)


def spec_paths(spec: dict[str, Any]) -> set[str]:
    """Every route of the app the spec names: health, smoke, budgets, monitors."""
    paths = {spec["health"][k] for k in ("liveness", "readiness", "simple")}
    paths |= {s["path"] for s in spec["deploy"].get("smoke", [])}
    paths |= {s["path"] for s in spec.get("budgets", {}).get("scenarios", [])}
    paths |= {urlsplit(m["url"].split("}", 1)[-1]).path or "/" for m in spec.get("monitors", [])}
    return paths


def findings_text(report: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for finding in report["findings"]:
        if finding["status"] in ("pass", "skip"):
            continue
        fix = finding.get("fix") or {}
        text = " ".join([finding["message"], fix.get("summary", ""), fix.get("lines", "")])
        out.append((finding["id"], text))
    return out


class TestInitOnTheFixture:
    def test_spec_and_static_check_hold_only_what_the_app_uses(self, tmp_path: Path) -> None:
        """The plain `nextjs` preset (no platform file), the variables the code reads and no
        other, the health route the app serves and the fields it answers; no backup (no
        database) and no Resend alert channel. Then `tower check --static`: no finding names
        Fly, Stripe, Supabase, Resend, PostHog, a database or a Python tool, and every variable
        a finding names is one the code reads."""
        folder, report = initialised(tmp_path)
        assert (report["preset"], report["target"], report["driver"]) == (
            "nextjs",
            "unknown",
            "exec",
        )
        text = (folder / "tower.toml").read_text()
        spec = tomllib.loads(text)
        assert UNUSED.search(re.sub(r"#.*", "", text)) is None  # comments may name options
        assert (
            set(spec["env"]["vars"])
            == set(detect(folder).env_vars)
            == {
                "FIXTURE_BUILD",
                "NEXT_PUBLIC_SENTRY_DSN_RUNTIME",
                "SENTRY_DIST",
                "SENTRY_DSN",
                "SENTRY_RELEASE",
            }
        )
        assert spec_paths(spec) == {"/", "/api/health"}
        assert spec["health"]["required_fields"] == ["status"]
        assert "backup" not in spec and "alerts" not in spec
        assert spec["deploy"]["instances"] == 1
        done = tower(folder, "check", "--static", "--format", "json")
        assert done.returncode in (0, 1), done.stderr
        used = set(detect(folder).env_vars)
        for check_id, text in findings_text(json.loads(done.stdout)):
            assert UNUSED.search(text) is None, (check_id, text)
            for name in re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", text):
                assert name in used or name.startswith("TOWER_"), (check_id, name)
