"""Reports: SARIF validates against the 2.1.0 schema, JUnit parses, Markdown and JSON carry it all,
and the HTML page stands alone and works in a real browser."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from junitparser import Error, JUnitXml, Skipped

from controltower.checks import (
    Category,
    CheckContext,
    CheckRun,
    Finding,
    Fix,
    Gate,
    Location,
    Severity,
    Status,
    run_checks,
    select,
)
from controltower.checks.scoring import gate_verdicts, score
from controltower.report import ReportFormat, render
from controltower.spec import load_spec

FIXTURE = Path(__file__).parent / "fixtures" / "plan_mistakes"
SCHEMA = Path(__file__).parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"
# sha256 of sarif-2.1/schema/sarif-schema-2.1.0.json in the OASIS sarif-spec repository
# (the schema published at docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/).
SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"


@pytest.fixture(scope="module")
def run() -> CheckRun:
    spec = load_spec(FIXTURE / "tower.toml", env="production")
    ctx = CheckContext(spec=spec, root=FIXTURE, environment="production")
    return asyncio.run(run_checks(ctx, select(kinds=("static",)), requested_gate=2))


def synthetic() -> CheckRun:
    """A run with every status, a live finding, a hostile message and a waived one."""

    def finding(check_id: str, status: Status, **extra: object) -> Finding:
        base: dict[str, object] = {
            "id": check_id,
            "title": f"title of {check_id}",
            "category": Category.SECURITY,
            "gate": Gate.PRODUCTION,
            "severity": Severity.HIGH,
            "status": status,
            "message": f"{status.value} message",
        }
        base.update(extra)
        return Finding(**base)  # type: ignore[arg-type]

    findings = [
        finding("t.pass", Status.PASS),
        finding(
            "t.fail",
            Status.FAIL,
            message="<script>alert(1)</script> & more",
            fix=Fix("Do this", "fly.toml", "[http_service]\n  force_https = true"),
            location=Location("fly.toml", 12),
            gate=Gate.CORE,
        ),
        finding("t.error", Status.ERROR, message="check crashed: KeyError"),
        finding("t.warn", Status.WARN, severity=Severity.LOW, gate=Gate.DEPLOY),
        finding("t.advice", Status.ADVICE, advice_reason="Fly runs its own init"),
        finding("t.waived", Status.WAIVED, message="bad (waived until 2026-12-01: accepted)"),
        finding("t.skip", Status.SKIP, message="applies to fly, not local"),
        finding("t.live", Status.FAIL, kind="live", category=Category.HEALTH),
    ]
    now = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
    return CheckRun(
        id="run0001",
        service="shop",
        environment="staging",
        target="fly",
        url="https://shop.example.com",
        started_at=now,
        finished_at=now + dt.timedelta(seconds=3),
        findings=findings,
        score=score(findings),
        gates=gate_verdicts(findings),
        requested_gate=2,
    )


class TestSarif:
    def test_schema_is_the_published_one(self) -> None:
        """The vendored schema is byte for byte the OASIS SARIF 2.1.0 schema."""
        assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
        assert json.loads(SCHEMA.read_text())["title"].startswith("Static Analysis Results Format")

    @pytest.mark.parametrize("which", ["fixture", "synthetic"])
    def test_validates_against_schema(self, run: CheckRun, which: str) -> None:
        """The SARIF report is valid SARIF 2.1.0, formats included, for real and every-status runs."""
        document = json.loads(
            render(run if which == "fixture" else synthetic(), ReportFormat.SARIF)
        )
        schema = json.loads(SCHEMA.read_text())
        validator = jsonschema.Draft4Validator(
            schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
        )
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == []

    def test_results_and_rules(self, run: CheckRun) -> None:
        """Every failure is an error result pointing at its file and line, with its rule and help."""
        document = json.loads(render(run, ReportFormat.SARIF))
        sarif_run = document["runs"][0]
        rules = sarif_run["tool"]["driver"]["rules"]
        results = {r["ruleId"]: r for r in sarif_run["results"]}
        release = results["fly.release_command"]
        assert release["level"] == "error"
        assert rules[release["ruleIndex"]]["id"] == "fly.release_command"
        assert rules[release["ruleIndex"]]["help"]["text"].startswith("Build in the Dockerfile")
        location = release["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "fly.toml"
        assert location["region"]["startLine"] == 7
        assert "release_command" in release["message"]["text"]
        assert results["docker.init"]["level"] == "note"
        assert all(r.get("locations") for r in sarif_run["results"])
        assert (
            results["docker.user"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "Dockerfile"
        )
        assert results["docker.user"]["partialFingerprints"] == {
            "towerCheck/v1": "docker.user:Dockerfile"
        }

    def test_waived_results_are_suppressed(self) -> None:
        """A waived finding is a result with an external suppression carrying the reason."""
        document = json.loads(render(synthetic(), ReportFormat.SARIF))
        waived = next(r for r in document["runs"][0]["results"] if r["ruleId"] == "t.waived")
        assert waived["suppressions"][0]["kind"] == "external"
        assert "accepted" in waived["suppressions"][0]["justification"]


class TestJunit:
    def test_parses(self, run: CheckRun) -> None:
        """JUnit XML loads in junitparser with one suite per gate and the right counts."""
        xml = JUnitXml.fromstring(render(run, ReportFormat.JUNIT))
        suites = list(xml)
        assert [s.name for s in suites] == [
            "gate 1: core infrastructure",
            "gate 2: production readiness",
            "gate 3: deploy ready",
        ]
        failures = sum(s.failures for s in suites)
        assert failures == sum(1 for f in run.findings if f.status.value == "fail")
        assert xml.tests == len(run.findings)
        cases = {case.name: case for suite in suites for case in suite}
        assert cases["docker.user"].result and cases["docker.user"].result[0].message.startswith(
            "no USER"
        )

    def test_every_status_maps(self) -> None:
        """Errors are <error>, advice and skips <skipped> with the reason, passes have no result."""
        xml = JUnitXml.fromstring(render(synthetic(), ReportFormat.JUNIT))
        cases = {case.name: case for suite in xml for case in suite}
        assert isinstance(cases["t.error"].result[0], Error)
        assert isinstance(cases["t.advice"].result[0], Skipped)
        assert "Fly runs its own init" in cases["t.advice"].result[0].message
        assert isinstance(cases["t.skip"].result[0], Skipped)
        assert cases["t.pass"].result == [] and cases["t.waived"].result == []
        fail = cases["t.fail"].result[0]
        assert "force_https = true" in (fail.text or "")
        assert (xml.failures, xml.errors, xml.skipped) == (2, 1, 2)


class TestNoValues:
    @pytest.mark.parametrize("format", [f for f in ReportFormat if f is not ReportFormat.TEXT])
    def test_no_env_value_in_any_report(self, run: CheckRun, format: ReportFormat) -> None:
        """No value from the fixture's .env files (placeholders aside) appears in any report format."""
        from controltower.envcheck.rules import is_placeholder

        page = render(run, format)
        for env_file in FIXTURE.glob(".env*"):
            for line in env_file.read_text().splitlines():
                value = line.partition("=")[2]
                if len(value) > 5 and not is_placeholder(value):
                    assert value not in page, (format, env_file.name)


class TestHumanReports:
    def test_markdown(self, run: CheckRun) -> None:
        """Markdown has the gate table and the fixes with code blocks."""
        text = render(run, ReportFormat.MARKDOWN)
        assert "| 1 | core infrastructure | NO-GO |" in text
        assert "### `next.source_maps` in `next.config.js`" in text and "```" in text

    def test_json(self, run: CheckRun) -> None:
        """JSON has the score, gates, the verdict for the requested gate and every finding."""
        data = json.loads(render(run, ReportFormat.JSON))
        assert data["gates"]["2"]["passed"] is False and data["passed"] is False
        assert data["requested_gate"] == 2
        assert {f["id"] for f in data["findings"]} >= {"fly.concurrency", "env.placeholder"}


class TestHtml:
    def test_self_contained(self, run: CheckRun) -> None:
        """One file: no script, no external stylesheet, image or font; no secret value."""
        page = render(run, ReportFormat.HTML)
        assert page.startswith("<!doctype html>")
        assert not re.search(r"<(script|link|img|iframe)\b", page)
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
        assert "@import" not in page and "url(" not in page
        assert "sk_test_fixture" not in page

    def test_leads_with_verdict_and_work(self, run: CheckRun) -> None:
        """The page states the verdict, lists fixes blocking gates first, and links every chip to its finding."""
        page = render(run, ReportFormat.HTML)
        assert "NO-GO for gate 2, production readiness" in page
        todo = page[page.index("What to fix, in order") :]
        order = re.findall(r'<li><div><div class="what"><a href="#(f-[a-z_-]+)"', todo)
        severities = ["critical", "high", "medium", "low"]
        expected = sorted(
            (f for f in run.findings if f.status.value in ("fail", "error", "warn")),
            key=lambda f: (
                not f.status.blocks,
                int(f.gate),
                severities.index(f.severity.value),
                f.id,
            ),
        )
        assert order == ["f-" + f.id.replace(".", "-") for f in expected]
        assert order[:2] == ["f-fly-memory", "f-fly-release_command"]
        for anchor in set(re.findall(r'href="#([^"]+)"', page)):
            assert f'id="{anchor}"' in page, anchor
        assert "Advice, not a failure:" in page and "Fly Machines run Fly&#x27;s own init" in page
        assert "release_command = &#x27;" in page

    def test_escapes_everything(self) -> None:
        """Messages are escaped: a finding cannot inject markup into the report."""
        page = render(synthetic(), ReportFormat.HTML)
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


CHROMIUM = os.environ.get("TOWER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


class TestHtmlInBrowser:
    def test_renders_offline_in_chromium(self, run: CheckRun, tmp_path: Path) -> None:
        """In Chromium the page loads with no request beyond itself, styled, with working links."""
        if not Path(CHROMIUM).exists():
            if os.environ.get("TOWER_REQUIRE_BROWSER") == "1":
                pytest.fail(f"no chromium at {CHROMIUM}")
            pytest.skip("chromium not installed (set TOWER_CHROMIUM)")
        from playwright.sync_api import sync_playwright

        page_file = tmp_path / "report.html"
        page_file.write_text(render(run, ReportFormat.HTML), encoding="utf-8")
        requests: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            assert requests == [page_file.as_uri()]
            assert "NO-GO" in page.title()
            assert page.locator(".gate").count() == 3
            items = page.locator(".todo li")
            assert items.count() == len(
                [f for f in run.findings if f.status.value in ("fail", "warn", "error")]
            )
            radius = page.eval_on_selector(".hero", "e => getComputedStyle(e).borderTopLeftRadius")
            assert radius == "16px"
            page.click(".gate.nogo a >> nth=0")
            target = page.evaluate("location.hash")
            assert page.locator(target).is_visible()
            opened = page.eval_on_selector_all(
                "details.finding.s-fail", "els => els.every(e => e.open)"
            )
            assert opened is True
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            browser.close()
        assert (tmp_path / "report.png").stat().st_size > 50_000
