"""Reports: SARIF validates against the 2.1.0 schema, JUnit parses, HTML stands alone."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml

from controltower.checks import CheckContext, CheckRun, run_checks, select
from controltower.report import ReportFormat, render
from controltower.spec import load_spec

FIXTURE = Path(__file__).parent / "fixtures" / "plan_mistakes"
SCHEMA = Path(__file__).parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def run() -> CheckRun:
    spec = load_spec(FIXTURE / "tower.toml", env="production")
    ctx = CheckContext(spec=spec, root=FIXTURE, environment="production")
    return asyncio.run(run_checks(ctx, select(kinds=("static",))))


class TestSarif:
    def test_validates_against_schema(self, run: CheckRun) -> None:
        """The SARIF report is valid SARIF 2.1.0."""
        document = json.loads(render(run, ReportFormat.SARIF))
        schema = json.loads(SCHEMA.read_text())
        jsonschema.Draft4Validator(schema).validate(document)

    def test_results_and_rules(self, run: CheckRun) -> None:
        """Every failure is an error result pointing at its file and line, with its rule."""
        document = json.loads(render(run, ReportFormat.SARIF))
        sarif_run = document["runs"][0]
        rules = [r["id"] for r in sarif_run["tool"]["driver"]["rules"]]
        results = {r["ruleId"]: r for r in sarif_run["results"]}
        release = results["fly.release_command"]
        assert release["level"] == "error"
        assert rules[release["ruleIndex"]] == "fly.release_command"
        location = release["locations"][0]["physicalLocation"]
        assert (
            location["artifactLocation"]["uri"] == "fly.toml"
            and location["region"]["startLine"] == 7
        )
        assert "release_command" in release["message"]["text"]
        assert results["docker.init"]["level"] == "note"


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


class TestHumanReports:
    def test_html_is_self_contained(self, run: CheckRun) -> None:
        """The HTML report is one file: no external scripts, styles or images, all findings and fixes in it."""
        page = render(run, ReportFormat.HTML)
        assert page.startswith("<!doctype html>")
        assert not re.search(r"<(script|link|img)\b", page)
        assert "fly.release_command" in page and "npx prisma migrate deploy" in page
        assert "Advice, not a failure" in page
        assert "sk_test_fixture" not in page

    def test_markdown(self, run: CheckRun) -> None:
        """Markdown has the gate table and the fixes with code blocks."""
        text = render(run, ReportFormat.MARKDOWN)
        assert "| 1 | core infrastructure | NO-GO |" in text
        assert "### `next.source_maps` in `next.config.js`" in text and "```" in text

    def test_json(self, run: CheckRun) -> None:
        """JSON has the score, gates and every finding."""
        data = json.loads(render(run, ReportFormat.JSON))
        assert data["gates"]["2"]["passed"] is False
        assert {f["id"] for f in data["findings"]} >= {"fly.concurrency", "env.placeholder"}
