"""Security headers: the Observatory grade, plus Trusted Types and Permissions-Policy."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.live import observatory
from controltower.checks.live.local import is_local
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Outcome,
    Severity,
    Status,
    failed,
    passed,
    warned,
)
from controltower.spec.service import Target

REDIRECTS = {301, 302, 303, 307, 308}


def to_response(response: httpx.Response, verified: bool = True) -> observatory.Response:
    body = response.text if "html" in response.headers.get("content-type", "").lower() else ""
    return observatory.Response(
        str(response.url),
        response.status_code,
        list(response.headers.multi_items()),
        body,
        verified,
    )


async def _route(
    client: httpx.AsyncClient, url: str, verified: bool = True, limit: int = 10
) -> list[observatory.Response]:
    """GET ``url`` and follow up to ``limit`` redirects by hand, keeping every response."""
    route = []
    for _ in range(limit + 1):
        response = await client.get(url)
        route.append(to_response(response, verified))
        if response.status_code not in REDIRECTS or "location" not in response.headers:
            break
        url = str(response.url.join(response.headers["location"]))
    return route


async def _session(client: httpx.AsyncClient, url: str) -> list[observatory.Response]:
    """The Observatory's session: on a certificate error it retries unverified (verified=False)."""
    try:
        return await _route(client, url)
    except httpx.ConnectError as exc:
        if "CERTIFICATE" not in str(exc).upper():
            return []
    except httpx.HTTPError:
        return []
    async with httpx.AsyncClient(
        verify=False, follow_redirects=False, timeout=client.timeout
    ) as unverified:
        try:
            return await _route(unverified, url, verified=False)
        except httpx.HTTPError:
            return []


async def scan(ctx: CheckContext) -> tuple[observatory.Scan, str]:
    """Retrieve what the Observatory retrieves. A plain-http local URL is graded as if on HTTPS."""

    async def make() -> tuple[observatory.Scan, str]:
        assert ctx.client is not None and ctx.url is not None
        client, url = ctx.client, ctx.url.rstrip("/") + "/"
        parts = urlsplit(url)
        if parts.scheme == "http" and (is_local(url) or ctx.target is Target.LOCAL):
            route = await _route(client, url)
            auto = route[-1]
            cors = await _preflight(client, auto.url)
            note = "graded as if served over HTTPS (local http URL); HTTPS itself is checked by https.redirect"
            https_url = urlunsplit(("https", parts.netloc, parts.path, "", ""))
            scan = observatory.Scan(
                auto=auto, https=auto, cors=cors, session=route, session_url=https_url
            )
            return scan, note
        http_route = await _session(client, urlunsplit(("http", parts.netloc, parts.path, "", "")))
        https_route = await _session(
            client, urlunsplit(("https", parts.netloc, parts.path, "", ""))
        )
        session = https_route or http_route
        if not session:
            raise httpx.ConnectError(f"neither http nor https answered at {parts.netloc}")
        auto = session[-1]
        cors = await _preflight(client, auto.url, auto.verified)
        return observatory.Scan(
            auto=auto,
            http=http_route[-1] if http_route else None,
            http_route=http_route,
            https=https_route[-1] if https_route else None,
            cors=cors,
            session=session,
            session_url=session[0].url,
            hostname=parts.hostname or "",
        ), ""

    result: tuple[observatory.Scan, str] = await ctx.once("observatory.scan", make)
    return result


async def _preflight(
    client: httpx.AsyncClient, url: str, verified: bool = True
) -> observatory.Response | None:
    """The CORS preflight the Observatory sends, as its origin."""
    headers = {"Origin": observatory.CORS_ORIGIN, "Access-Control-Request-Method": "GET"}
    try:
        if verified:
            return to_response(await client.options(url, headers=headers))
        async with httpx.AsyncClient(verify=False, timeout=client.timeout) as unverified:
            return to_response(await unverified.options(url, headers=headers), verified=False)
    except httpx.HTTPError:
        return None


def header_fixes(ctx: CheckContext, graded: observatory.Grade) -> str:
    security = ctx.spec.security
    csp = security.csp or (
        "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; "
        f"form-action 'self'; frame-ancestors {security.frame_ancestors}"
    )
    wanted = {
        "content-security-policy": f"Content-Security-Policy: {csp}",
        "strict-transport-security": f"Strict-Transport-Security: max-age={int(security.hsts_max_age)}; includeSubDomains",
        "x-content-type-options": "X-Content-Type-Options: nosniff",
        "x-frame-options": "X-Frame-Options: DENY",
        "referrer-policy": f"Referrer-Policy: {security.referrer_policy}",
        "cross-origin-resource-policy": "Cross-Origin-Resource-Policy: same-origin",
        "cookies": "Set-Cookie: <name>=<value>; Secure; HttpOnly; SameSite=Lax",
        "redirection": "(redirect http:// to https:// on the same host; on Fly: force_https = true)",
        "cross-origin-resource-sharing": "Access-Control-Allow-Origin: <one trusted origin> (never reflect Origin with credentials)",
        "subresource-integrity": '<script src="https://cdn.example/x.js" integrity="sha384-..." crossorigin="anonymous">',
    }
    lines = [
        wanted[t.name]
        for t in graded.tests
        if (t.modifier < 0 or (t.name == "cross-origin-resource-policy" and t.modifier == 0))
        and t.name in wanted
    ]
    return "\n".join(lines)


@register
class SecurityHeaders(Check):
    """The home page's headers earn at least [security] min_grade (B) under the HTTP
    Observatory's scoring: CSP, cookies, CORS, redirection, Referrer-Policy, HSTS, SRI,
    X-Content-Type-Options, X-Frame-Options, CORP."""

    id = "security.headers"
    title = "Security headers earn the minimum Observatory grade"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    kind = "live"
    remedy = "Send the headers listed in the fix (the values come from [security] in tower.toml)."

    async def run(self, ctx: CheckContext) -> Outcome:
        result, note = await scan(ctx)
        graded = observatory.grade(result)
        minimum = ctx.spec.security.min_grade
        details = [f"{t.name}: {t.result} ({t.modifier:+d})" for t in graded.tests]
        details += [f"{t.name}: {t.result} (reported, not scored)" for t in graded.extra]
        data = {
            "score": graded.score,
            "grade": graded.grade,
            "note": note,
            "tests": {t.name: t.result for t in graded.tests},
        }
        message = f"grade {graded.grade} (score {graded.score}; minimum {minimum})" + (
            f"; {note}" if note else ""
        )
        if not observatory.at_least(graded.grade, minimum):
            fix = Fix("Send these response headers", "", header_fixes(ctx, graded))
            return Outcome(Status.FAIL, message, fix, details=tuple(details), data=data)
        return Outcome(Status.PASS, message, details=tuple(details), data=data)


@register
class PermissionsPolicy(Check):
    """The home page sends a Permissions-Policy header."""

    id = "security.permissions_policy"
    title = "Permissions-Policy limits powerful browser features"
    category = Category.SECURITY
    gate = Gate.DEPLOY
    severity = Severity.LOW
    kind = "live"
    remedy = "Send Permissions-Policy with [security] permissions_policy (camera=(), microphone=(), geolocation=())."

    async def run(self, ctx: CheckContext) -> Outcome:
        result, _ = await scan(ctx)
        if result.auto.get("permissions-policy"):
            return passed("Permissions-Policy set")
        return warned(
            "no Permissions-Policy",
            Fix("Send it", "", f"Permissions-Policy: {ctx.spec.security.permissions_policy}"),
        )


@register
class TrustedTypes(Check):
    """The CSP includes require-trusted-types-for 'script' (required when [security]
    trusted_types = true, a warning otherwise)."""

    id = "security.trusted_types"
    title = "CSP requires Trusted Types for scripts"
    category = Category.SECURITY
    gate = Gate.DEPLOY
    severity = Severity.LOW
    kind = "live"
    remedy = "Add require-trusted-types-for 'script' and a trusted-types policy to the CSP."

    async def run(self, ctx: CheckContext) -> Outcome:
        result, _ = await scan(ctx)
        csp = (result.auto.get("content-security-policy") or "").lower()
        if "require-trusted-types-for 'script'" in csp:
            return passed("require-trusted-types-for 'script'")
        fix = Fix(
            "Add to the CSP",
            "",
            "Content-Security-Policy: ...; require-trusted-types-for 'script'; trusted-types default",
        )
        if ctx.spec.security.trusted_types:
            return failed("[security] trusted_types = true but the CSP does not require them", fix)
        return warned("Trusted Types not required (reported; not graded by the Observatory)", fix)
