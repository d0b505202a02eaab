"""HTTPS: redirect from http on the same host, certificate lifetime, TLS version."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import Category, Fix, Gate, Outcome, Severity, failed, passed
from controltower.spec.service import Target

FORCE_HTTPS = Fix(
    "Redirect http to https on the same host", "fly.toml", "[http_service]\n  force_https = true"
)
PLAIN_HTTP_ADVICE = (
    "a local target is served over plain http; HTTPS belongs to the platform in front of it"
)


@register
class Redirect(Check):
    id = "https.redirect"
    title = "http:// redirects to https:// on the same host"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.HIGH
    kind = "live"
    advice_on = frozenset({Target.LOCAL})
    advice_reason = PLAIN_HTTP_ADVICE

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.client is not None and ctx.url is not None
        parts = urlsplit(ctx.url)
        if parts.scheme != "https":
            return failed(f"{ctx.url} is served over plain http", FORCE_HTTPS)
        http_url = urlunsplit(("http", parts.netloc, parts.path or "/", "", ""))
        response = await ctx.client.get(http_url)
        location = response.headers.get("location", "")
        target = urlsplit(str(response.url.join(location))) if location else None
        if not response.is_redirect or target is None:
            return failed(
                f"{http_url} answered {response.status_code} without a redirect", FORCE_HTTPS
            )
        if target.scheme != "https" or target.hostname != parts.hostname:
            return failed(
                f"{http_url} redirects to {location}, not https on {parts.hostname}", FORCE_HTTPS
            )
        return passed(f"{response.status_code} to {location}")


async def peer_certificate(
    host: str, port: int, timeout: float = 5.0, context: ssl.SSLContext | None = None
) -> tuple[dict[str, object], str]:
    context = context or ssl.create_default_context()
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
    )
    try:
        sslobj = writer.get_extra_info("ssl_object")
        return sslobj.getpeercert() or {}, sslobj.version() or ""
    finally:
        writer.close()
        await writer.wait_closed()


@register
class Certificate(Check):
    id = "https.certificate"
    title = "The certificate is valid for long enough, over TLS 1.2 or later"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.HIGH
    kind = "live"
    advice_on = frozenset({Target.LOCAL})
    advice_reason = PLAIN_HTTP_ADVICE

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.url is not None
        parts = urlsplit(ctx.url)
        if parts.scheme != "https":
            return failed(f"{ctx.url} has no TLS", FORCE_HTTPS)
        try:
            cert, version = await peer_certificate(
                parts.hostname or "", parts.port or 443, context=ctx.cache.get("ssl_context")
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            return failed(
                f"TLS handshake failed: {exc}",
                Fix("Install a valid certificate: fly certs add <hostname>"),
            )
        expires = datetime.strptime(str(cert["notAfter"]), "%b %d %H:%M:%S %Y %Z").replace(
            tzinfo=UTC
        )
        days = (expires - ctx.clock.now()).days
        minimum = ctx.spec.security.cert_min_days
        message = f"{version}, certificate expires in {days} days"
        if version not in ("TLSv1.2", "TLSv1.3"):
            return failed(
                message + "; TLS below 1.2",
                Fix(
                    "Disable TLS 1.0/1.1",
                    "fly.toml",
                    "[http_service.tls_options]\n  versions = ['TLSv1.2', 'TLSv1.3']",
                ),
            )
        if days < minimum:
            return failed(
                message + f" (minimum {minimum})",
                Fix(
                    "Renew the certificate; check that automatic renewal works (fly certs check <hostname>)"
                ),
            )
        return passed(message, days_left=days, tls=version)
