"""HTTPS checks against a real TLS server on 127.0.0.1 that also answers plain HTTP on the same port."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import socket
import socketserver
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from controltower.checks import CheckContext, CheckRun, Status, run_checks, select
from controltower.spec import parse_spec
from controltower.testing import FakeClock
from tests.conftest import self_signed_certificate

SPEC = """
[service]
name = "shop"
target = "docker"
[security]
min_grade = "B"
cert_min_days = 14
"""
HEADERS = {
    "Strict-Transport-Security": "max-age=63072000",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Type": "text/html; charset=utf-8",
}


@dataclass
class Site:
    url: str
    cert: Path
    redirect_to: list[str]

    @property
    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _DualServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        if not isinstance(self.connection, ssl.SSLSocket):
            host = self.server.redirect_to[0] or self.headers["Host"]
            self.send_response(301)
            self.send_header("Location", f"https://{host}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<!doctype html><html><body>ok</body></html>"
        self.send_response(200)
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _DualServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """TLS when the client opens with a handshake record (0x16), plain HTTP otherwise."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext, redirect_to: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.redirect_to = redirect_to

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        sock.settimeout(10)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            first = b""
        if first == b"\x16":
            return self.context.wrap_socket(sock, server_side=True), address
        return sock, address

    def handle_error(self, request: object, client_address: object) -> None:
        return  # handshakes refused on purpose (old TLS, untrusted clients)


def _serve(tmp_path: Path, old_tls: bool) -> Iterator[Site]:
    cert, key = self_signed_certificate(
        tmp_path, common_name="localhost", names="DNS:localhost,IP:127.0.0.1"
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if old_tls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    redirect_to = [""]
    server = _DualServer(context, redirect_to)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"https://localhost:{server.server_address[1]}", cert, redirect_to)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _serve(tmp_path, old_tls=False)


@pytest.fixture
def old_tls_site(tmp_path: Path) -> Iterator[Site]:
    yield from _serve(tmp_path, old_tls=True)


def check(
    site: Site,
    ids: list[str],
    *,
    trusted: bool = True,
    clock: FakeClock | None = None,
    tweak: Callable[[CheckContext], None] | None = None,
) -> CheckRun:
    async def go() -> CheckRun:
        verify: ssl.SSLContext | bool = site.trust if trusted else True
        async with httpx.AsyncClient(verify=verify, timeout=10) as client:
            ctx = CheckContext(
                spec=parse_spec(SPEC),
                root=Path("."),
                url=site.url,
                client=client,
                ssl_context=site.trust if trusted else None,
                clock=clock or FakeClock(dt.datetime.now(dt.UTC)),
            )
            if tweak:
                tweak(ctx)
            return await run_checks(ctx, select(ids))

    return asyncio.run(go())


class TestCertificate:
    def test_valid_certificate(self, site: Site) -> None:
        """A trusted certificate with 30 days left, over TLS 1.3, with old TLS refused, passes."""
        finding = check(site, ["https.certificate"]).findings[0]
        assert finding.status is Status.PASS, finding.message
        assert finding.data["tls"] == "TLSv1.3" and 28 <= finding.data["days_left"] <= 30
        assert finding.data["old_tls"] in (False, None)

    def test_expiring_certificate(self, site: Site) -> None:
        """Fewer days left than cert_min_days fails, with the command to check renewal."""
        later = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=20))
        finding = check(site, ["https.certificate"], clock=later).findings[0]
        assert finding.status is Status.FAIL and "(minimum 14)" in finding.message
        assert finding.fix is not None and finding.fix.lines == "fly certs check localhost"

    def test_old_tls_accepted(self, old_tls_site: Site) -> None:
        """A server that still completes a TLS 1.1 handshake fails, with the tls_options fix."""
        finding = check(old_tls_site, ["https.certificate"]).findings[0]
        assert finding.data["old_tls"] is True, finding.message
        assert finding.status is Status.FAIL and "TLS 1.0/1.1 are still accepted" in finding.message
        assert finding.fix is not None and "versions = ['TLSv1.2', 'TLSv1.3']" in finding.fix.lines

    def test_untrusted_certificate(self, site: Site) -> None:
        """A certificate no trusted authority issued fails the handshake."""
        finding = check(site, ["https.certificate"], trusted=False).findings[0]
        assert finding.status is Status.FAIL and "TLS handshake" in finding.message
        assert finding.fix is not None and "fly certs add localhost" in finding.fix.lines


class TestRedirect:
    def test_same_host(self, site: Site) -> None:
        """http:// on the same host and port redirecting to https:// passes."""
        finding = check(site, ["https.redirect"]).findings[0]
        assert finding.status is Status.PASS and "301" in finding.message

    def test_other_host(self, site: Site) -> None:
        """A redirect to https on another host fails with the fly.toml fix."""
        site.redirect_to[0] = "elsewhere.example"
        finding = check(site, ["https.redirect"]).findings[0]
        assert finding.status is Status.FAIL and "elsewhere.example" in finding.message
        assert finding.fix is not None and "force_https = true" in finding.fix.lines


class TestObservatoryOverTls:
    def test_scan_follows_http_to_https(self, site: Site) -> None:
        """The header scan retrieves http and https like the Observatory and grades the https page."""
        finding = check(site, ["security.headers"]).findings[0]
        tests = finding.data["tests"]
        assert tests["redirection"] == "redirection-to-https"
        assert tests["strict-transport-security"] == "hsts-implemented-max-age-at-least-six-months"
        assert tests["x-frame-options"] == "x-frame-options-implemented-via-csp"
        assert (finding.data["score"], finding.data["grade"]) == (115, "A+")
        assert finding.status is Status.PASS and not finding.data["note"]

    def test_untrusted_certificate_is_graded_as_the_observatory_does(self, site: Site) -> None:
        """With a certificate the client does not trust, HSTS and redirection take the invalid-cert results."""
        finding = check(site, ["security.headers"], trusted=False).findings[0]
        tests = finding.data["tests"]
        assert tests["strict-transport-security"] == "hsts-invalid-cert"
        assert tests["redirection"] == "redirection-invalid-cert"
