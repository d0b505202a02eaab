"""Next.js configuration, when the repository has one."""

from __future__ import annotations

import re
from typing import ClassVar

from controltower.checks.base import Check, CheckContext, register
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
)
from controltower.checks.static.files import line_of, read_text
from controltower.spec.nextconfig import NextConfig, find
from controltower.spec.service import Target

MIDDLEWARE = [
    f"{d}{n}.{e}"
    for d in ("", "src/")
    for n in ("middleware", "proxy")
    for e in ("ts", "js", "mjs")
]
HEADERS = (
    "content-security-policy",
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


class NextCheck(Check):
    category: ClassVar[Category] = Category.SECURITY

    async def run(self, ctx: CheckContext) -> Outcome:
        config = find(ctx.root)
        if config is None:
            return skipped("no next.config.*")
        return self.judge(ctx, config.name, config.text)

    def judge(self, ctx: CheckContext, name: str, text: str) -> Outcome:
        raise NotImplementedError


@register
class PoweredBy(NextCheck):
    """next.config sets poweredByHeader: false."""

    id = "next.powered_by"
    title = "Next.js does not announce itself (poweredByHeader: false)"
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    remedy = "Add poweredByHeader: false to next.config."

    def judge(self, ctx: CheckContext, name: str, text: str) -> Outcome:
        if re.search(r"poweredByHeader\s*:\s*false", text):
            return passed("poweredByHeader: false")
        return failed(
            "X-Powered-By: Next.js is sent",
            Fix("Turn it off", name, "poweredByHeader: false,"),
            location=Location(name, line_of(text, r"poweredByHeader")),
        )


@register
class SourceMaps(NextCheck):
    """next.config does not set productionBrowserSourceMaps: true."""

    id = "next.source_maps"
    title = "No browser source maps in production"
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Set productionBrowserSourceMaps: false and upload maps to the error tracker."

    def judge(self, ctx: CheckContext, name: str, text: str) -> Outcome:
        if re.search(r"productionBrowserSourceMaps\s*:\s*true", text):
            return failed(
                "productionBrowserSourceMaps: true publishes the app's source",
                Fix(
                    "Turn it off (upload maps to the error tracker instead)",
                    name,
                    "productionBrowserSourceMaps: false,",
                ),
                location=Location(name, line_of(text, r"productionBrowserSourceMaps")),
            )
        return passed("no production browser source maps")


@register
class Standalone(NextCheck):
    """For container targets, next.config sets output: 'standalone'."""

    id = "next.standalone"
    title = "output: 'standalone' for container images"
    category = Category.PERFORMANCE
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    targets = frozenset({Target.FLY, Target.DOCKER, Target.KUBERNETES})
    remedy = "Add output: 'standalone' so the image carries only the traced server files."

    def judge(self, ctx: CheckContext, name: str, text: str) -> Outcome:
        if NextConfig(name, text).standalone:
            return passed("output: 'standalone'")
        return failed(
            "no standalone output: the image carries all of node_modules",
            Fix("Build a standalone server", name, "output: 'standalone',"),
        )


@register
class SecurityHeaders(NextCheck):
    """next.config headers() or middleware/proxy sets at least Content-Security-Policy and
    Strict-Transport-Security."""

    id = "next.security_headers"
    title = "Security headers are set in headers() or middleware"
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = (
        "Return the security headers from headers() in next.config (or set them in middleware)."
    )

    def judge(self, ctx: CheckContext, name: str, text: str) -> Outcome:
        places = [(name, text)] + [(m, read_text(ctx.path(m)) or "") for m in MIDDLEWARE]
        found = {h for _, body in places for h in HEADERS if h in body.lower()}
        if {"content-security-policy", "strict-transport-security"} <= found:
            return passed(f"sets {', '.join(sorted(found))}")
        missing = [h for h in HEADERS if h not in found]
        return failed(
            f"missing security headers: {', '.join(missing)}",
            Fix(
                "Add them in next.config headers()",
                name,
                "async headers() {\n  return [{ source: '/(.*)', headers: [\n"
                "    { key: 'Strict-Transport-Security', value: 'max-age=63072000; includeSubDomains; preload' },\n"
                "    { key: 'Content-Security-Policy', value: \"default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'\" },\n"
                "    { key: 'X-Content-Type-Options', value: 'nosniff' },\n"
                "    { key: 'X-Frame-Options', value: 'DENY' },\n"
                "    { key: 'Referrer-Policy', value: 'strict-origin-when-cross-origin' },\n"
                "  ] }];\n},",
            ),
        )
