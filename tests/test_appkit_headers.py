"""Security headers: the policy builder, per-request CSP nonces, report-only, ASGI and WSGI."""

from __future__ import annotations

import re

import httpx
import pytest

from controltower.appkit import (
    HeaderPolicy,
    SecurityHeaders,
    SecurityHeadersWSGI,
    csp_nonce,
    secure,
)
from tests.appkit_support import serve_asgi, serve_wsgi


def directives(value: str) -> dict[str, str]:
    return {
        part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else ""
        for part in value.split("; ")
    }


class TestPolicy:
    def test_defaults(self) -> None:
        """The default policy is strict: HSTS two years, nosniff, frame-ancestors 'none', nonce on scripts."""
        headers = dict(HeaderPolicy().headers("abc"))
        assert (
            headers["strict-transport-security"] == "max-age=63072000; includeSubDomains; preload"
        )
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert headers["permissions-policy"] == "camera=(), microphone=(), geolocation=()"
        assert headers["cross-origin-resource-policy"] == "same-origin"
        csp = directives(headers["content-security-policy"])
        assert (
            csp["script-src"] == "'self' 'nonce-abc'" and csp["style-src"] == "'self' 'nonce-abc'"
        )
        assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
        assert "server" not in headers and "require-trusted-types-for" not in csp

    def test_overrides_trusted_types_and_report_only(self) -> None:
        """CSP entries merge over defaults (None drops one); trusted types and report-only work."""
        policy = HeaderPolicy(
            csp={"script-src": "'self' https://js.stripe.com", "font-src": None},
            frame_ancestors="'self'",
            trusted_types=True,
            report_only=True,
            report_uri="https://tower.example.com/api/csp",
            nonce=False,
        )
        headers = dict(policy.headers())
        assert "content-security-policy" not in headers
        csp = directives(headers["content-security-policy-report-only"])
        assert csp["script-src"] == "'self' https://js.stripe.com"
        assert "font-src" not in csp and csp["frame-ancestors"] == "'self'"
        assert csp["require-trusted-types-for"] == "'script'"
        assert (
            csp["report-uri"] == "https://tower.example.com/api/csp" and csp["report-to"] == "csp"
        )
        assert headers["reporting-endpoints"] == 'csp="https://tower.example.com/api/csp"'

    def test_policy_or_options_not_both(self) -> None:
        """Passing a policy and loose options at once is refused."""
        with pytest.raises(TypeError):
            SecurityHeaders(None, policy=HeaderPolicy(), hsts=None)


class TestAsgi:
    def test_nonce_is_fresh_and_reaches_the_app(self) -> None:
        """Each response has a new nonce, the same one the app saw in request.state.csp_nonce."""
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse
        from starlette.routing import Route

        async def page(request: Request) -> HTMLResponse:
            nonce = request.state.csp_nonce
            assert csp_nonce(request) == nonce
            return HTMLResponse(
                f'<script nonce="{nonce}">1</script>',
                headers={"server": "uvicorn/0.1", "x-powered-by": "Starlette"},
            )

        app = Starlette(routes=[Route("/", page)])
        secure(app)
        with serve_asgi(app) as url, httpx.Client() as client:
            seen = []
            for _ in range(3):
                response = client.get(url)
                header_nonce = re.search(
                    r"'nonce-([^']+)'", response.headers["content-security-policy"]
                )
                assert header_nonce is not None
                assert f'nonce="{header_nonce.group(1)}"' in response.text
                assert "server" not in response.headers and "x-powered-by" not in response.headers
                seen.append(header_nonce.group(1))
        assert len(set(seen)) == 3 and all(len(n) >= 22 for n in seen)

    def test_starlette_templates_get_the_nonce(self, tmp_path: object) -> None:
        """Jinja2Templates pages use {{ request.state.csp_nonce }} or {{ csp_nonce(request) }}."""
        import jinja2
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route
        from starlette.templating import Jinja2Templates

        loader = jinja2.DictLoader(
            {
                "page.html": '<script nonce="{{ request.state.csp_nonce }}">a()</script>'
                '<style nonce="{{ csp_nonce(request) }}">p{}</style>'
            }
        )
        templates = Jinja2Templates(env=jinja2.Environment(loader=loader, autoescape=True))
        templates.env.globals["csp_nonce"] = csp_nonce

        async def page(request: Request) -> Response:
            return templates.TemplateResponse(request, "page.html")

        app = Starlette(routes=[Route("/", page)])
        secure(app)
        with serve_asgi(app) as url:
            response = httpx.get(url)
        nonce = re.search(
            r"script-src 'self' 'nonce-([^']+)'", response.headers["content-security-policy"]
        )
        assert nonce is not None
        assert response.text.count(f'nonce="{nonce.group(1)}"') == 2

    def test_report_only_with_report_uri(self) -> None:
        """Report-only mode sends the policy under its report-only name, with where to report."""
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        async def page(request: object) -> PlainTextResponse:
            return PlainTextResponse("ok")

        app = Starlette(routes=[Route("/", page)])
        secure(
            app, report_only=True, report_uri="https://tower.example/api/csp", trusted_types=True
        )
        with serve_asgi(app) as url:
            response = httpx.get(url)
        assert "content-security-policy" not in response.headers
        policy = directives(response.headers["content-security-policy-report-only"])
        assert policy["report-uri"] == "https://tower.example/api/csp"
        assert policy["report-to"] == "csp"
        assert policy["require-trusted-types-for"] == "'script'"
        assert response.headers["reporting-endpoints"] == 'csp="https://tower.example/api/csp"'

    def test_app_headers_win_and_server_can_be_replaced(self) -> None:
        """A header the app sets itself is kept; server can be set to a fixed value without version."""

        async def app(scope: dict[str, object], receive: object, send: object) -> None:
            headers = [(b"x-frame-options", b"SAMEORIGIN"), (b"server", b"nginx/1.25.3")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

        with serve_asgi(SecurityHeaders(app, server="app")) as url:
            response = httpx.get(url)
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert response.headers["server"] == "app"


class TestWsgi:
    def test_flask_templates_get_the_nonce(self) -> None:
        """On Flask, templates call csp_nonce() and get the nonce that is in the header."""
        from flask import Flask, render_template_string

        app = Flask(__name__)

        @app.get("/")
        def index() -> str:
            return render_template_string('<script nonce="{{ csp_nonce() }}"></script>')

        secure(app, trusted_types=True)
        with serve_wsgi(app) as url:
            response = httpx.get(url)
        csp = response.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp)
        assert nonce is not None and f'nonce="{nonce.group(1)}"' in response.text
        assert "require-trusted-types-for 'script'" in csp

    def test_plain_wsgi_removes_powered_by(self) -> None:
        """The WSGI middleware removes X-Powered-By and Server and adds the headers."""

        def app(environ: dict[str, object], start_response: object) -> list[bytes]:
            start_response("200 OK", [("X-Powered-By", "PHP/5"), ("Server", "gunicorn/22")])  # type: ignore[operator]
            return [b"ok"]

        with serve_wsgi(SecurityHeadersWSGI(app, report_only=True)) as url:
            response = httpx.get(url)
        assert "x-powered-by" not in response.headers
        assert not response.headers.get("server", "").startswith("gunicorn")
        assert "content-security-policy-report-only" in response.headers
