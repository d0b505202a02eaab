"""Dependency advisories: npm audit and pip-audit run for real; offline they say "not run"."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from controltower.checks import CheckContext, CheckRun, Status, run_checks, select
from controltower.checks.static.vulns import pip_items
from controltower.report.machine import to_sarif
from controltower.spec import parse_spec
from controltower.spec.loader import SpecError

FIXTURES = Path(__file__).parent / "fixtures" / "vulnerable"
SPEC = '[service]\nname = "shop"\ntarget = "fly"\n'
UNROUTABLE = "http://127.0.0.1:9/"
LODASH_ADVISORY = {
    "id": 1065,
    "url": "https://github.com/advisories/GHSA-jf85-cpcp-j695",
    "title": "Prototype Pollution in lodash",
    "severity": "critical",
    "vulnerable_versions": "<4.17.12",
    "cwe": ["CWE-20"],
    "cvss": {"score": 9.1, "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N"},
}


def audit(root: Path, environ: dict[str, str], spec: str = SPEC) -> CheckRun:
    ctx = CheckContext(spec=parse_spec(spec), root=root, environ=environ)
    return asyncio.run(run_checks(ctx, select(["deps.vulnerabilities"])))


def advisory_waiver(advisory: str, expires: str) -> str:
    return (
        f'{SPEC}[[waivers]]\ncheck = "deps.vulnerabilities"\nadvisory = "{advisory}"\n'
        f'reason = "lodash is only used at build time"\nexpires = {expires}\n'
    )


@pytest.fixture
def node_app(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "node", tmp_path / "node")
    return tmp_path / "node"


@pytest.fixture
def advisory_registry(httpserver: HTTPServer) -> list[dict[str, list[str]]]:
    """The npm registry's bulk advisory endpoint, as documented for `npm audit`
    (https://docs.npmjs.com/cli/v10/commands/npm-audit, "Bulk Advisory Endpoint"):
    POST /-/npm/v1/security/advisories/bulk with {package: [versions]}, possibly
    gzip-encoded, answers {package: [advisory with id, url, title, severity,
    vulnerable_versions, cwe, cvss]}; packuments it is not asked to hold are 404."""
    asked: list[dict[str, list[str]]] = []

    def bulk(request: Request) -> Response:
        body = request.get_data()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        wanted = json.loads(body)
        asked.append(wanted)
        found = {name: [LODASH_ADVISORY] for name in wanted if name == "lodash"}
        return Response(json.dumps(found), content_type="application/json")

    httpserver.expect_request(
        "/-/npm/v1/security/advisories/bulk", method="POST"
    ).respond_with_handler(bulk)
    httpserver.expect_request("/lodash").respond_with_data("", status=404)
    return asked


class TestNpmAudit:
    def test_known_advisory_fails_gate_two(
        self, node_app: Path, httpserver: HTTPServer, advisory_registry: list[dict[str, list[str]]]
    ) -> None:
        """Real `npm audit` on the fixture's lockfile finds the critical lodash advisory the
        registry holds: the check fails gate 2 and the item carries its GHSA id and severity."""
        run = audit(node_app, {"npm_config_registry": httpserver.url_for("/")})
        finding = run.findings[0]
        assert advisory_registry == [{"lodash": ["4.17.4"]}]
        assert finding.status is Status.FAIL, finding.message
        assert [(i.rule, i.level, i.file) for i in finding.items] == [
            ("GHSA-jf85-cpcp-j695", "critical", "package-lock.json")
        ]
        assert not run.gates[2].passed and "deps.vulnerabilities" in run.gates[2].failing
        sarif = json.loads(to_sarif(run))["runs"][0]
        result = next(r for r in sarif["results"] if r["ruleId"] == "GHSA-jf85-cpcp-j695")
        assert result["level"] == "error"
        assert (
            result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "package-lock.json"
        )

    def test_network_cut_is_not_run(self, node_app: Path) -> None:
        """With the registry unreachable, the check says "not run" and why; it never passes."""
        finding = audit(node_app, {"npm_config_registry": UNROUTABLE}).findings[0]
        assert finding.status is Status.WARN
        assert finding.message.startswith("not run: package-lock.json: npm audit could not reach")
        assert "ECONNREFUSED" in finding.message


class TestAdvisoryWaivers:
    def test_live_waiver_waives_that_advisory_alone(
        self, node_app: Path, httpserver: HTTPServer, advisory_registry: list[dict[str, list[str]]]
    ) -> None:
        """A waiver naming the GHSA id lets gate 2 pass and says what it waived, until when
        and why; a waiver of another advisory leaves the finding failing and is listed as
        matching nothing."""
        environ = {"npm_config_registry": httpserver.url_for("/")}
        run = audit(node_app, environ, advisory_waiver("GHSA-jf85-cpcp-j695", "2099-01-01"))
        finding = next(f for f in run.findings if f.id == "deps.vulnerabilities")
        assert finding.status is Status.PASS, finding.message
        assert finding.message.endswith("1 advisory waived")
        [line] = finding.data["waived"]
        assert line.startswith("waived: package-lock.json: GHSA-jf85-cpcp-j695 (critical)")
        assert line.endswith("(until 2099-01-01: lodash is only used at build time)")
        assert run.gates[2].passed
        other = audit(node_app, environ, advisory_waiver("GHSA-aaaa-bbbb-cccc", "2099-01-01"))
        finding = next(f for f in other.findings if f.id == "deps.vulnerabilities")
        assert finding.status is Status.FAIL
        assert "waiver for GHSA-aaaa-bbbb-cccc matches no advisory found; it can go" in (
            finding.details
        )

    def test_expired_waiver_fails(
        self, node_app: Path, httpserver: HTTPServer, advisory_registry: list[dict[str, list[str]]]
    ) -> None:
        """An expired advisory waiver waives nothing and fails waivers.expired (gate 1)."""
        environ = {"npm_config_registry": httpserver.url_for("/")}
        run = audit(node_app, environ, advisory_waiver("GHSA-jf85-cpcp-j695", "2020-01-01"))
        by_id = {f.id: f for f in run.findings}
        assert by_id["deps.vulnerabilities"].status is Status.FAIL
        assert by_id["waivers.expired"].status is Status.FAIL
        assert (
            "deps.vulnerabilities GHSA-jf85-cpcp-j695: expired 2020-01-01"
            in by_id["waivers.expired"].details[0]
        )
        assert not run.gates[1].passed

    def test_pysec_id_matches_a_pip_audit_item(self) -> None:
        """pip-audit items are named by their GHSA alias; a waiver may name the PYSEC id."""
        spec = parse_spec(advisory_waiver("PYSEC-2023-100", "2099-01-01"))
        [item], _ = pip_items(
            {"dependencies": [{"name": "flask", "version": "2.0.0", "vulns": [
                {"id": "PYSEC-2023-100", "aliases": ["GHSA-m2qf-hxjv-5gpq"], "fix_versions": ["2.2.5"]}
            ]}]},
            "requirements.txt",
        )  # fmt: skip
        assert item.rule == "GHSA-m2qf-hxjv-5gpq"
        assert spec.waivers[0].matches(item.rule, item.message)

    def test_advisory_waiver_must_be_for_the_audit(self) -> None:
        """An advisory on another check, or an id that is not one, is refused with file:line."""
        text = advisory_waiver("GHSA-jf85-cpcp-j695", "2099-01-01").replace(
            'check = "deps.vulnerabilities"', 'check = "docker.hadolint"'
        )
        with pytest.raises(SpecError) as caught:
            parse_spec(text, source="tower.toml")
        assert "tower.toml:" in str(caught.value)
        assert 'an advisory waiver is for check = "deps.vulnerabilities"' in str(caught.value)
        with pytest.raises(SpecError):
            parse_spec(advisory_waiver("not an id", "2099-01-01"))


class TestPipAudit:
    def test_network_cut_is_not_run(self, tmp_path: Path) -> None:
        """pip-audit behind an unroutable proxy cannot reach PyPI: "not run", never "pass"."""
        shutil.copytree(FIXTURES / "python", tmp_path / "py")
        environ = {"HTTPS_PROXY": UNROUTABLE, "https_proxy": UNROUTABLE}
        finding = audit(tmp_path / "py", environ).findings[0]
        assert finding.status is Status.WARN and finding.message.startswith("not run:")

    def test_real_pypi_finds_or_says_not_run(self, tmp_path: Path) -> None:
        """Against PyPI as this machine reaches it, the pinned requests 2.19.0 is either found
        (and fails gate 2) or, when PyPI's JSON API does not answer, reported as not run."""
        shutil.copytree(FIXTURES / "python", tmp_path / "py")
        finding = audit(tmp_path / "py", {}).findings[0]
        if finding.status is Status.FAIL:
            assert any("requests 2.19.0" in i.message for i in finding.items)
        else:
            assert finding.status is Status.WARN and finding.message.startswith("not run:"), (
                finding.message
            )

    def test_report_items(self) -> None:
        """pip-audit's JSON (one entry per dependency, vulns with id, fix_versions, aliases,
        or a skip_reason) becomes items named by GHSA id, with unknown severity, and skips."""
        report = {
            "dependencies": [
                {
                    "name": "requests",
                    "version": "2.19.0",
                    "vulns": [
                        {
                            "id": "PYSEC-2018-28",
                            "fix_versions": ["2.20.0"],
                            "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
                            "description": "...",
                        }
                    ],
                },
                {"name": "private-pkg", "skip_reason": "Dependency not found on PyPI"},
            ],
            "fixes": [],
        }
        items, skipped = pip_items(report, "requirements.txt")
        assert [(i.rule, i.level) for i in items] == [("GHSA-x84v-xcm2-53pg", "unknown")]
        assert "fixed in 2.20.0" in items[0].message and skipped == ["Dependency not found on PyPI"]

    def test_nothing_to_audit_is_skipped(self, tmp_path: Path) -> None:
        """A repository with no lockfile or requirements file skips the check."""
        assert audit(tmp_path, {}).findings[0].status is Status.SKIP
