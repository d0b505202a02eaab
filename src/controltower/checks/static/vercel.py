"""Vercel: vercel.json against Vercel's schema, its headers graded, env parity and domains.

The schema (``data/vercel.schema.json``) is vendored: the routing keys and
``functions``/``builds`` are the JSON schemas Vercel's own packages export
(``@vercel/routing-utils``, ``@vercel/build-utils``, what the Vercel CLI
validates with), the other top-level keys a subset written from
https://vercel.com/docs/project-configuration; the file names its sources and
date. Env parity and domains read the project through the REST API (names
only: a variable's value never leaves Vercel), and are skipped without a token.
"""

from __future__ import annotations

import asyncio
import json
import re
from functools import cache
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import urlsplit

import jsonschema

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.live import observatory
from controltower.checks.live.headers import header_fixes
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Location,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)
from controltower.exceptions import DriverError
from controltower.spec.service import Target

VERCEL = frozenset({Target.VERCEL})
CONFIG = "vercel.json"
TARGETS = ("production", "preview", "development")


@cache
def schema() -> dict[str, Any]:
    text = resources.files("controltower.checks.static").joinpath("data/vercel.schema.json")
    data: dict[str, Any] = json.loads(text.read_text())
    return data


def validate(data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(JSON path, problem) for every place vercel.json breaks the schema."""
    validator = jsonschema.Draft7Validator(schema())
    found = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        path: tuple[str | int, ...] = tuple(error.path)
        unexpected = re.search(r"\('([^']+)' (?:was|were) unexpected", error.message)
        if error.validator == "additionalProperties" and unexpected:
            path = (*path, unexpected.group(1))
        found.append((path, error.message))
    return found


def json_line(text: str, path: tuple[str | int, ...]) -> int:
    """The line of a JSON path's key in ``text`` (the nearest found; 1 when none)."""
    offset = 0
    for part in path:
        if isinstance(part, str):
            found = text.find(json.dumps(part), offset)
            if found >= 0:
                offset = found + 1
    return text.count("\n", 0, max(0, offset - 1)) + 1


def _pattern(source: str) -> re.Pattern[str] | None:
    """A path-to-regexp ``source`` as a regular expression (the common forms)."""
    out = re.sub(r":\w+\*", ".*", source)
    out = re.sub(r":\w+\+", ".+", out)
    out = re.sub(r":\w+\?", "[^/]*", out)
    out = re.sub(r":\w+(\([^)]*\))", r"\1", out)
    out = re.sub(r":\w+", "[^/]+", out)
    try:
        return re.compile(out)
    except re.error:
        return None


def headers_for(config: dict[str, Any], path: str = "/") -> list[tuple[str, str]]:
    """The headers vercel.json sends on ``path`` (rules with ``has``/``missing`` left out)."""
    found: dict[str, tuple[str, str]] = {}
    for rule in config.get("headers") or []:
        if not isinstance(rule, dict) or rule.get("has") or rule.get("missing"):
            continue
        pattern = _pattern(str(rule.get("source", "")))
        if pattern is None or not pattern.fullmatch(path):
            continue
        for header in rule.get("headers") or []:
            if isinstance(header, dict) and "key" in header:
                found[str(header["key"]).lower()] = (str(header["key"]), str(header.get("value")))
    return list(found.values())


def grade_headers(config: dict[str, Any], host: str) -> observatory.Grade:
    """The Observatory grade of the home page as vercel.json's headers make it.

    Vercel redirects HTTP to HTTPS on its domains itself, so the scan has that
    redirect; nothing else the platform may add is counted.
    """
    page = observatory.Response(f"https://{host}/", 200, headers_for(config))
    http = observatory.Response(f"http://{host}/", 308, [("location", f"https://{host}/")])
    return observatory.grade(
        observatory.Scan(auto=page, http=page, http_route=[http, page], https=page)
    )


async def _read(ctx: CheckContext) -> tuple[str, Any] | None:
    path = ctx.root / CONFIG
    if not path.is_file():
        return None
    text = path.read_text(errors="replace")
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        return text, exc


@register
class VercelConfig(Check):
    """vercel.json, when present, parses and fits Vercel's published schema: known keys, and
    headers, redirects, rewrites, routes and functions shaped as the Vercel CLI accepts."""

    id = "vercel.config"
    title = "vercel.json fits Vercel's schema"
    category = Category.CONFIG
    gate = Gate.CORE
    severity = Severity.HIGH
    targets: ClassVar[frozenset[Target]] = VERCEL
    remedy = "Fix each key listed (https://vercel.com/docs/project-configuration)."

    async def run(self, ctx: CheckContext) -> Outcome:
        read = await _read(ctx)
        if read is None:
            return passed(f"no {CONFIG}: Vercel's defaults apply")
        text, data = read
        if isinstance(data, json.JSONDecodeError):
            return failed(
                f"{CONFIG} is not valid JSON: {data.msg}",
                Fix("Fix the JSON syntax at the line given", CONFIG),
                location=Location(CONFIG, data.lineno),
            )
        found = validate(data)
        if not found:
            return passed(f"{CONFIG} fits Vercel's schema")
        located = sorted((json_line(text, path), path, message) for path, message in found)
        details = [
            f"line {line}: {'.'.join(map(str, path)) or '(top)'}: {message}"
            for line, path, message in located
        ]
        line, path, message = located[0]
        return failed(
            f"{len(found)} problem{'s' if len(found) != 1 else ''} in {CONFIG}; first: "
            f"{'.'.join(map(str, path)) or '(top)'}: {message}",
            Fix("Fix each key listed", CONFIG),
            location=Location(CONFIG, line),
            details=details,
        )


@register
class VercelHeaders(Check):
    """The security headers vercel.json sends on the home page earn [security] min_grade
    under the HTTP Observatory's scoring, the same grading as the live check."""

    id = "vercel.headers"
    title = "vercel.json's headers earn the minimum Observatory grade"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    targets: ClassVar[frozenset[Target]] = VERCEL
    remedy = 'Add the headers listed to vercel.json under "headers" for "source": "/(.*)".'

    async def run(self, ctx: CheckContext) -> Outcome:
        read = await _read(ctx)
        if read is None or not isinstance(read[1], dict):
            return skipped(f"no readable {CONFIG}")
        if not read[1].get("headers"):
            return skipped(
                f"{CONFIG} sets no headers: the app's own are judged by the next.* checks "
                "and live by security.headers"
            )
        host = urlsplit(ctx.spec.url or "").hostname or "example.vercel.app"
        graded = grade_headers(read[1], host)
        minimum = ctx.spec.security.min_grade
        details = [f"{t.name}: {t.result} ({t.modifier:+d})" for t in graded.tests]
        message = f"{CONFIG} headers grade {graded.grade} (score {graded.score}; minimum {minimum})"
        if observatory.at_least(graded.grade, minimum):
            return passed(message, grade=graded.grade, score=graded.score)
        wanted = [line.partition(": ") for line in header_fixes(ctx, graded).splitlines()]
        snippet = json.dumps(
            {
                "headers": [
                    {
                        "source": "/(.*)",
                        "headers": [
                            {"key": key, "value": value}
                            for key, _, value in wanted
                            if value and not key.startswith(("(", "<", "Set-Cookie"))
                        ],
                    }
                ]
            },
            indent=2,
        )
        return failed(
            message, Fix("Add these headers to vercel.json", CONFIG, snippet), details=details
        )


def _api(ctx: CheckContext) -> Any:
    """The Vercel API client from [deploy.vercel] and the environment, or None without a token."""
    from controltower.deploy.drivers.vercel_api import VercelAPI

    vercel = ctx.spec.deploy.vercel
    token = ctx.environ.get(vercel.token_env, "")
    if not token or not vercel.project:
        return None
    team = vercel.team_id or ctx.environ.get(vercel.team_env, "")
    return VercelAPI(token, team_id=team, base_url=vercel.api_url, retry_for=30.0)


class VercelAPICheck(Check):
    targets: ClassVar[frozenset[Target]] = VERCEL

    async def run(self, ctx: CheckContext) -> Outcome:
        api = _api(ctx)
        if api is None:
            name = ctx.spec.deploy.vercel.token_env
            return skipped(f"${name} or [deploy.vercel] project not set: Vercel not asked")
        try:
            return await asyncio.to_thread(self.judge, ctx, api)
        except DriverError as exc:
            return failed(str(exc.message), Fix(exc.hint or "check the token and team"))
        finally:
            api.close()

    def judge(self, ctx: CheckContext, api: Any) -> Outcome:
        raise NotImplementedError


def missing_by_target(
    wanted: dict[str, list[str]], present: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """Catalog names (with the environments they are needed in) missing per Vercel target."""
    have: dict[str, set[str]] = {t: set() for t in TARGETS}
    for env in present:
        for target in env.get("target") or []:
            have.setdefault(str(target), set()).add(str(env.get("key")))
    missing: dict[str, list[str]] = {}
    for target in TARGETS:
        names = [n for n, envs in wanted.items() if (not envs or target in envs)]
        gone = sorted(n for n in names if n not in have[target])
        if gone:
            missing[target] = gone
    return missing


@register
class VercelEnvParity(VercelAPICheck):
    """Every required variable of tower's env catalog is set on the Vercel project for each
    target it is needed in (production, preview, development); names only."""

    id = "vercel.env_parity"
    title = "Vercel's project variables match tower's env catalog"
    category = Category.CONFIG
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = (
        "Add each missing variable with `vercel env add NAME production` (or in the dashboard)."
    )

    def judge(self, ctx: CheckContext, api: Any) -> Outcome:
        wanted = {
            name: list(var.environments) for name, var in ctx.spec.env.vars.items() if var.required
        }
        present = api.env_names(ctx.spec.deploy.vercel.project)
        missing = missing_by_target(wanted, present)
        extra = sorted({str(e["key"]) for e in present} - set(ctx.spec.env.vars))
        details = [f"{t}: missing {', '.join(names)}" for t, names in missing.items()]
        if extra:
            details.append("on Vercel, not in the catalog: " + ", ".join(extra))
        if "production" in missing:
            names = missing["production"]
            return failed(
                f"{len(names)} variable(s) missing in production on Vercel: {', '.join(names)}",
                Fix(
                    "Add them on the Vercel project",
                    "",
                    "\n".join(f"vercel env add {n} production" for n in names),
                ),
                details=details,
            )
        if missing:
            return warned(
                "variables missing outside production: "
                + "; ".join(f"{t}: {', '.join(n)}" for t, n in missing.items()),
                details=details,
            )
        return passed(
            f"{len(wanted)} catalog variable(s) set on Vercel for every target they need",
            details=details,
        )


@register
class VercelDomains(VercelAPICheck):
    """Every domain of the Vercel project is verified and configured (so Vercel issues its
    certificate), and a redirecting domain redirects permanently."""

    id = "vercel.domains"
    title = "Vercel domains are verified, with certificates, redirecting permanently"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Finish each domain's DNS setup in the Vercel dashboard (Domains)."

    def judge(self, ctx: CheckContext, api: Any) -> Outcome:
        domains = api.domains(ctx.spec.deploy.vercel.project)
        if not domains:
            return warned("the Vercel project has no domain: only its *.vercel.app URL serves")
        problems: list[str] = []
        for domain in domains:
            name = str(domain.get("name", ""))
            if not domain.get("verified"):
                problems.append(f"{name}: not verified (add the TXT record Vercel lists)")
                continue
            config = api.domain_config(name)
            if config.get("misconfigured"):
                problems.append(
                    f"{name}: DNS misconfigured, so Vercel cannot issue its certificate"
                )
            redirect = domain.get("redirect")
            code = domain.get("redirectStatusCode")
            if redirect and code not in (301, 308):
                problems.append(f"{name}: redirects to {redirect} with {code}, not 301/308")
        shown = ", ".join(str(d.get("name")) for d in domains)
        if problems:
            return failed(
                f"{len(problems)} domain problem(s): {problems[0]}",
                Fix("Fix each domain listed in the Vercel dashboard (Domains)"),
                details=problems,
            )
        return passed(f"{len(domains)} domain(s) verified and configured: {shown}")
