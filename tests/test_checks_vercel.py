"""Vercel checks: vercel.json against the vendored schema, its headers graded, env parity and
domains through the local Vercel (tests/fakes/vercel_api.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controltower.checks import CheckContext, CheckRun, Status, run_checks, select
from controltower.checks.static.vercel import headers_for, schema
from controltower.spec import load_spec
from tests.fakes.vercel_api import FakeVercel
from tests.vercel_support import TOKEN, fake_vercel

SPEC = """
[service]
name = "shop"
target = "vercel"

[environments.production]
url = "https://shop.example.com"

[deploy]
driver = "vercel"

[deploy.vercel]
project = "shop"
team_id = "team_shop"
api_url = "{api}"
source = "prebuilt"

[env.vars.DATABASE_URL]
secret = true

[env.vars.STRIPE_SECRET_KEY]
secret = true

[env.vars.NEXT_PUBLIC_POSTHOG_KEY]
environments = ["production"]
"""

GOOD_HEADERS = {
    "headers": [
        {
            "source": "/(.*)",
            "headers": [
                {
                    "key": "Content-Security-Policy",
                    "value": "default-src 'self'; object-src 'none'; base-uri 'self'; "
                    "form-action 'self'; frame-ancestors 'none'",
                },
                {"key": "Strict-Transport-Security", "value": "max-age=63072000"},
                {"key": "X-Content-Type-Options", "value": "nosniff"},
                {"key": "X-Frame-Options", "value": "DENY"},
                {"key": "Referrer-Policy", "value": "strict-origin-when-cross-origin"},
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def vercel() -> Iterator[FakeVercel]:
    fake = fake_vercel()
    try:
        yield fake
    finally:
        fake.stop()


def run(root: Path, vercel: FakeVercel | None = None, ids: str = "vercel.") -> CheckRun:
    (root / "tower.toml").write_text(SPEC.format(api=vercel.url if vercel else "http://x"))
    spec = load_spec(root / "tower.toml", env="production")
    environ = {"VERCEL_TOKEN": TOKEN} if vercel else {}
    ctx = CheckContext(spec=spec, root=root, environment="production", environ=environ)
    return asyncio.run(run_checks(ctx, select([ids], kinds=("static",))))


def finding(run: CheckRun, check: str) -> object:
    return next(f for f in run.findings if f.id == check)


class TestVercelJson:
    def test_schema_is_vendored_with_its_sources(self) -> None:
        """The package data names where each part of the schema came from, and when."""
        sources = schema()["_source"]
        assert "@vercel/routing-utils" in json.dumps(sources) and sources["date"]

    def test_unknown_key_and_bad_header_reported_with_lines(self, tmp_path: Path) -> None:
        """An unknown top-level key and a header without value fail, each with its line."""
        (tmp_path / "vercel.json").write_text(
            '{\n  "cleanUrls": true,\n  "buildComand": "next build",\n'
            '  "headers": [\n    {"source": "/(.*)", "headers": [{"key": "X-Frame-Options"}]}\n  ]\n}\n'
        )
        found = finding(run(tmp_path, ids="vercel.config"), "vercel.config")
        assert found.status is Status.FAIL  # type: ignore[attr-defined]
        details = "\n".join(found.details)  # type: ignore[attr-defined]
        assert "line 3: buildComand: Additional properties are not allowed" in details
        assert "line 5: headers.0.headers.0: 'value' is a required property" in details

    def test_valid_file_passes(self, tmp_path: Path) -> None:
        """A vercel.json with documented keys only passes."""
        (tmp_path / "vercel.json").write_text(
            json.dumps({"cleanUrls": True, "regions": ["fra1"], **GOOD_HEADERS})
        )
        found = finding(run(tmp_path, ids="vercel.config"), "vercel.config")
        assert found.status is Status.PASS  # type: ignore[attr-defined]

    def test_headers_graded_like_live_ones(self, tmp_path: Path) -> None:
        """Headers for "/(.*)" earn a grade; without CSP and HSTS the grade fails with a fix."""
        (tmp_path / "vercel.json").write_text(json.dumps(GOOD_HEADERS))
        good = finding(run(tmp_path, ids="vercel.headers"), "vercel.headers")
        assert good.status is Status.PASS, good.message  # type: ignore[attr-defined]
        weak = {
            "headers": [{"source": "/", "headers": [{"key": "X-Frame-Options", "value": "DENY"}]}]
        }
        (tmp_path / "vercel.json").write_text(json.dumps(weak))
        bad = finding(run(tmp_path, ids="vercel.headers"), "vercel.headers")
        assert bad.status is Status.FAIL  # type: ignore[attr-defined]
        assert "Content-Security-Policy" in bad.fix.lines  # type: ignore[attr-defined]

    def test_no_headers_in_vercel_json_is_not_judged_here(self, tmp_path: Path) -> None:
        """Headers may come from next.config: a vercel.json without any is skipped, not failed."""
        (tmp_path / "vercel.json").write_text(json.dumps({"regions": ["fra1"]}))
        found = finding(run(tmp_path, ids="vercel.headers"), "vercel.headers")
        assert found.status is Status.SKIP  # type: ignore[attr-defined]

    def test_only_rules_matching_the_home_page_count(self) -> None:
        """A rule for /api/:path* does not apply to "/"; has/missing rules are left out."""
        config = {
            "headers": [
                {"source": "/api/:path*", "headers": [{"key": "A", "value": "1"}]},
                {"source": "/:path*", "headers": [{"key": "B", "value": "2"}]},
                {
                    "source": "/(.*)",
                    "has": [{"type": "host", "value": "x"}],
                    "headers": [{"key": "C", "value": "3"}],
                },
            ]
        }
        assert headers_for(config) == [("B", "2")]


class TestThroughTheAPI:
    def test_variable_missing_in_production_is_reported(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """A catalog variable set only for preview fails parity in production, by name only."""
        vercel.project.envs = [
            {
                "key": "DATABASE_URL",
                "target": ["production", "preview", "development"],
                "type": "encrypted",
                "value": "enc:SECRET-VALUE",
            },
            {
                "key": "STRIPE_SECRET_KEY",
                "target": ["preview"],
                "type": "encrypted",
                "value": "enc:OTHER-SECRET",
            },
            {
                "key": "NEXT_PUBLIC_POSTHOG_KEY",
                "target": ["production"],
                "type": "plain",
                "value": "phc_x",
            },
        ]
        result = run(tmp_path, vercel, ids="vercel.env_parity")
        found = finding(result, "vercel.env_parity")
        assert found.status is Status.FAIL  # type: ignore[attr-defined]
        assert "missing in production on Vercel: STRIPE_SECRET_KEY" in found.message  # type: ignore[attr-defined]
        assert "development: missing STRIPE_SECRET_KEY" in found.details  # type: ignore[attr-defined]
        text = json.dumps([f.message for f in result.findings]) + str(result)
        assert "SECRET-VALUE" not in text and "OTHER-SECRET" not in text

    def test_parity_passes_when_every_target_has_its_variables(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """Every required name present where needed: parity passes."""
        everywhere = ["production", "preview", "development"]
        vercel.project.envs = [
            {"key": k, "target": everywhere, "type": "encrypted", "value": "enc:x"}
            for k in ("DATABASE_URL", "STRIPE_SECRET_KEY", "NEXT_PUBLIC_POSTHOG_KEY")
        ]
        found = finding(run(tmp_path, vercel, ids="vercel.env_parity"), "vercel.env_parity")
        assert found.status is Status.PASS, found.message  # type: ignore[attr-defined]

    def test_unverified_and_misconfigured_domains_fail(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """An unverified domain, one whose DNS keeps Vercel from issuing a certificate, and a
        302 redirect are each reported."""
        vercel.project.domains = [
            {"name": "shop.example.com", "verified": True, "redirect": None},
            {
                "name": "www.shop.example.com",
                "verified": True,
                "redirect": "shop.example.com",
                "redirectStatusCode": 302,
            },
            {"name": "old.example.com", "verified": False},
        ]
        vercel.project.configs = {
            "shop.example.com": {"misconfigured": False, "configuredBy": "A"},
            "www.shop.example.com": {"misconfigured": True, "configuredBy": None},
        }
        found = finding(run(tmp_path, vercel, ids="vercel.domains"), "vercel.domains")
        assert found.status is Status.FAIL  # type: ignore[attr-defined]
        details = "\n".join(found.details)  # type: ignore[attr-defined]
        assert "old.example.com: not verified" in details
        assert "www.shop.example.com: DNS misconfigured" in details
        assert "with 302, not 301/308" in details
        assert "shop.example.com: " not in details.replace("www.shop", "").replace("old.", "")

    def test_without_a_token_vercel_is_not_asked(self, tmp_path: Path) -> None:
        """No $VERCEL_TOKEN: the API checks are skipped and say why."""
        found = finding(run(tmp_path, ids="vercel.env_parity"), "vercel.env_parity")
        assert found.status is Status.SKIP  # type: ignore[attr-defined]
        assert "VERCEL_TOKEN" in found.message  # type: ignore[attr-defined]
