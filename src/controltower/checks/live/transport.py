"""HTTPS: redirect from http on the same host, certificate lifetime, TLS version."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.live.local import local_http
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
)
from controltower.spec.service import Target

FORCE_HTTPS = Fix(
    "Redirect http to https on the same host", "fly.toml", "[http_service]\n  force_https = true"
)
LOCAL_URL = (
    "a plain-http URL on this machine: HTTPS belongs to the platform in front of it "
    "(the header grade treats it the same way)"
)
PLAIN_HTTP_ADVICE = (
    "a local target is served over plain http; HTTPS belongs to the platform in front of it"
)


@register
class Redirect(Check):
    """The URL is https, and its http:// form redirects to https:// on the same host."""

    id = "https.redirect"
    title = "http:// redirects to https:// on the same host"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.HIGH
    kind = "live"
    advice_on = frozenset({Target.LOCAL})
    advice_reason = PLAIN_HTTP_ADVICE
    remedy = "Redirect http to https on the same host (force_https = true on Fly)."

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.client is not None and ctx.url is not None
        if local_http(ctx.url) and ctx.target is not Target.LOCAL:
            return skipped(LOCAL_URL)
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
    """The server's certificate (verified against ``context``) and the TLS version negotiated."""
    context = context or ssl.create_default_context()
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
    )
    try:
        sslobj = writer.get_extra_info("ssl_object")
        return sslobj.getpeercert() or {}, sslobj.version() or ""
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def accepts_old_tls(host: str, port: int, timeout: float = 5.0) -> bool | None:
    """Whether the server completes a TLS 1.0/1.1 handshake; None when this client cannot offer one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return None
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
        )
    except ssl.SSLError as exc:
        return None if "NO_PROTOCOLS_AVAILABLE" in str(exc).upper() else False
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


TLS_OPTIONS = Fix(
    "Allow only TLS 1.2 and 1.3",
    "fly.toml",
    "[http_service.tls_options]\n  versions = ['TLSv1.2', 'TLSv1.3']",
)


@register
class Certificate(Check):
    """The TLS handshake succeeds with a trusted certificate for the host, negotiates TLS 1.2
    or 1.3, refuses TLS 1.0/1.1 (when this machine's OpenSSL can still offer them), and the
    certificate has at least [security] cert_min_days left."""

    id = "https.certificate"
    title = "The certificate is valid for long enough, over TLS 1.2 or later"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.HIGH
    kind = "live"
    advice_on = frozenset({Target.LOCAL})
    advice_reason = PLAIN_HTTP_ADVICE
    remedy = "Install or renew the certificate (fly certs add <host>; fly certs check <host>) and allow only TLS 1.2+."

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.url is not None
        if local_http(ctx.url) and ctx.target is not Target.LOCAL:
            return skipped(LOCAL_URL)
        parts = urlsplit(ctx.url)
        host, port = parts.hostname or "", parts.port or 443
        if parts.scheme != "https":
            return failed(f"{ctx.url} has no TLS", FORCE_HTTPS)
        try:
            cert, version = await peer_certificate(host, port, context=ctx.ssl_context)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            return failed(
                f"TLS handshake with {host}:{port} failed: {exc}",
                Fix(
                    "Serve a certificate issued for this host by a trusted authority",
                    "",
                    f"fly certs add {host}\nfly certs check {host}",
                ),
            )
        expires = datetime.strptime(str(cert["notAfter"]), "%b %d %H:%M:%S %Y %Z").replace(
            tzinfo=UTC
        )
        days = (expires - ctx.clock.now()).days
        minimum = ctx.spec.security.cert_min_days
        old = await accepts_old_tls(host, port)
        message = f"{version}, certificate expires in {days} days"
        message += (
            "" if old is not None else " (TLS 1.0/1.1 not probed: this OpenSSL cannot offer them)"
        )
        data: dict[str, Any] = {"days_left": days, "tls": version, "old_tls": old}
        if version not in ("TLSv1.2", "TLSv1.3"):
            return failed(message + "; negotiated TLS below 1.2", TLS_OPTIONS, **data)
        if old:
            return failed(message + "; TLS 1.0/1.1 are still accepted", TLS_OPTIONS, **data)
        if days < minimum:
            return failed(
                message + f" (minimum {minimum})",
                Fix(
                    "Renew the certificate and check that automatic renewal works",
                    "",
                    f"fly certs check {host}",
                ),
                **data,
            )
        return passed(message, **data)
