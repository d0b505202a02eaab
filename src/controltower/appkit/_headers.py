"""Security headers: HSTS, CSP with a per-request nonce, and the rest of the usual set."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NONCE_KEY = "controltower.csp_nonce"
NONCE_MARK = "{nonce}"

DEFAULT_CSP: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


@dataclass(frozen=True)
class HeaderPolicy:
    """Which security headers to send. Pure: ``headers(nonce)`` builds them, nothing else.

    ``csp`` entries update ``DEFAULT_CSP`` (a value of None drops a directive).
    With ``nonce`` each response gets a fresh ``'nonce-…'`` in script-src and
    style-src, available to templates. ``report_only`` sends
    Content-Security-Policy-Report-Only; ``report_uri`` adds report-uri and a
    Reporting-Endpoints ``csp`` group.
    """

    hsts: str | None = "max-age=63072000; includeSubDomains; preload"
    csp: Mapping[str, str | None] = field(default_factory=dict)
    nonce: bool = True
    frame_ancestors: str = "'none'"
    trusted_types: bool = False
    report_only: bool = False
    report_uri: str | None = None
    frame_options: str | None = "DENY"
    referrer_policy: str | None = "strict-origin-when-cross-origin"
    permissions_policy: str | None = "camera=(), microphone=(), geolocation=()"
    cross_origin_resource_policy: str | None = "same-origin"
    cross_origin_opener_policy: str | None = "same-origin"
    remove: tuple[str, ...] = ("server", "x-powered-by")
    server: str | None = None

    def csp_header(self) -> tuple[str, str] | None:
        """(header name, value with ``{nonce}`` marks) or None when CSP is off."""
        directives: dict[str, str | None] = {**DEFAULT_CSP, **self.csp}
        if self.nonce:
            for name in ("script-src", "style-src"):
                if directives.get(name):
                    directives[name] = f"{directives[name]} 'nonce-{NONCE_MARK}'"
        directives["frame-ancestors"] = self.frame_ancestors
        if self.trusted_types:
            directives["require-trusted-types-for"] = "'script'"
        if self.report_uri:
            directives["report-uri"] = self.report_uri
            directives["report-to"] = "csp"
        value = "; ".join(f"{k} {v}".strip() for k, v in directives.items() if v is not None)
        name = (
            "content-security-policy-report-only" if self.report_only else "content-security-policy"
        )
        return name, value

    def static_headers(self) -> list[tuple[str, str]]:
        found = [
            ("strict-transport-security", self.hsts),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", self.frame_options),
            ("referrer-policy", self.referrer_policy),
            ("permissions-policy", self.permissions_policy),
            ("cross-origin-resource-policy", self.cross_origin_resource_policy),
            ("cross-origin-opener-policy", self.cross_origin_opener_policy),
            ("reporting-endpoints", f'csp="{self.report_uri}"' if self.report_uri else None),
            ("server", self.server),
        ]
        return [(k, v) for k, v in found if v]

    def headers(self, nonce: str | None = None) -> list[tuple[str, str]]:
        """Every header for one response, the nonce filled in."""
        found = self.static_headers()
        csp = self.csp_header()
        if csp is not None:
            found.append((csp[0], csp[1].replace(NONCE_MARK, nonce or "")))
        return found


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def _policy(policy: HeaderPolicy | None, options: Mapping[str, Any]) -> HeaderPolicy:
    if policy is not None and options:
        raise TypeError("pass either policy= or header options, not both")
    return policy or HeaderPolicy(**options)


class _Prepared:
    """A policy turned into bytes once, so each response only fills in the nonce."""

    def __init__(self, policy: HeaderPolicy) -> None:
        self.policy = policy
        self.static = [(k.encode(), v.encode()) for k, v in policy.static_headers()]
        csp = policy.csp_header()
        self.csp_name = csp[0].encode() if csp else None
        self.csp_parts = csp[1].split(NONCE_MARK) if csp else []
        self.uses_nonce = policy.nonce and len(self.csp_parts) > 1

    def csp(self, nonce: str) -> bytes:
        return nonce.join(self.csp_parts).encode()

    def merge(
        self, existing: Iterable[tuple[bytes, bytes]], nonce: str
    ) -> list[tuple[bytes, bytes]]:
        """The app's headers (minus removed ones; its own values win) plus ours."""
        kept = []
        own = set()
        removed = {h.encode() for h in self.policy.remove}
        for key, value in existing:
            lower = key.lower()
            if lower in removed:
                continue
            own.add(lower)
            kept.append((key, value))
        kept.extend((k, v) for k, v in self.static if k not in own)
        if self.csp_name and self.csp_name not in own:
            kept.append((self.csp_name, self.csp(nonce)))
        return kept


class SecurityHeaders:
    """ASGI middleware adding security headers; the nonce is in ``request.state.csp_nonce``."""

    def __init__(self, app: Any, *, policy: HeaderPolicy | None = None, **options: Any) -> None:
        self.app = app
        self.prepared = _Prepared(_policy(policy, options))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        prepared = self.prepared
        nonce = new_nonce() if prepared.uses_nonce else ""
        if nonce:
            scope.setdefault("state", {})["csp_nonce"] = nonce
            scope[NONCE_KEY] = nonce

        async def send_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": prepared.merge(message.get("headers", ()), nonce)}
            await send(message)

        await self.app(scope, receive, send_headers)


class SecurityHeadersWSGI:
    """WSGI middleware adding security headers; the nonce is in ``environ["controltower.csp_nonce"]``."""

    def __init__(self, app: Any, *, policy: HeaderPolicy | None = None, **options: Any) -> None:
        self.app = app
        self.prepared = _Prepared(_policy(policy, options))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        prepared = self.prepared
        nonce = new_nonce() if prepared.uses_nonce else ""
        environ[NONCE_KEY] = nonce

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            merged = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in prepared.merge(raw, nonce)
            ]
            return start_response(status, merged, exc_info)

        result: Iterable[bytes] = self.app(environ, start)
        return result


def csp_nonce(request: Any) -> str:
    """The CSP nonce of this request: pass a Starlette/Flask/Django request, an ASGI scope or a WSGI environ."""
    for source in (
        getattr(request, "scope", None),
        getattr(request, "environ", None),
        getattr(request, "META", None),
        request,
    ):
        if isinstance(source, Mapping) and NONCE_KEY in source:
            return str(source[NONCE_KEY])
    return ""
