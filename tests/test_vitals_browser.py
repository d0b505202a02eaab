"""1,000 web-vitals beacons from a real ``web-vitals`` build in Chromium, through ``tower serve``.

The page (tests/fixtures/webvitals/frame.html) loads web-vitals 4.2.4 (pinned in
tests/fixtures/webtools) and sends every metric it reports as its own beacon
(``navigator.sendBeacon``, cross-origin, ``text/plain``) to a real tower server,
and the same body to the page's own server, from which the test computes the
reference p75. To reach 1,000 beacons quickly, one top-level load holds 30 such
documents in iframes: each has its own navigation (TTFB), paints (FCP, LCP), a
real layout shift (CLS) and a click whose handler blocks the main thread (INP).
Nothing is synthesized in JavaScript: every value is what the browser measured
and web-vitals reported; leaving the top page (``about:blank``) makes web-vitals
report LCP, CLS and INP on ``visibilitychange``, as it does for real users.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from controltower.ingest.projects import load_projects
from controltower.server import create_token, start_server
from controltower.spec import parse_spec
from controltower.store import Store
from tests.browser_support import chromium
from tests.conftest import unavailable

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "webvitals"
FRAMES = 30
WANTED = 1000
METRICS = ("LCP", "INP", "CLS", "FCP", "TTFB")


def web_vitals_script() -> bytes:
    tools = os.environ.get("TOWER_WEBTOOLS", "")
    script = Path(tools) / "node_modules" / "web-vitals" / "dist" / "web-vitals.iife.js"
    if not tools or not script.is_file():
        unavailable(
            "no web-vitals build: set TOWER_WEBTOOLS=$(bash scripts/webtools.sh | tail -1)",
            "TOWER_REQUIRE_BROWSER",
        )
    return script.read_bytes()


class Site:
    """The page's own server: the top page of iframes, the frame, web-vitals, and /raw."""

    def __init__(self, script: bytes) -> None:
        self.script = script
        self.raw: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                if kind == "text/javascript":
                    self.send_header("Cache-Control", "max-age=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path == "/web-vitals.js":
                    self._send(site.script, "text/javascript")
                elif parts.path == "/frame.html":
                    self._send((FIXTURE / "frame.html").read_bytes(), "text/html")
                elif parts.path == "/top":
                    start, tower = int(query["start"][0]), query["tower"][0]
                    frames = "".join(
                        f'<iframe width="300" height="150" src="/frame.html?seed={start + i}'
                        f'&tower={tower}"></iframe>'
                        for i in range(FRAMES)
                    )
                    self._send(f"<!doctype html><body>{frames}</body>".encode(), "text/html")
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with site.lock:
                    site.raw.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        return Handler


@contextlib.contextmanager
def serve_site(site: Site) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), site.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _settle(count: Any, deadline: float) -> None:
    """Wait until ``count()`` stops growing for half a second (or the deadline)."""
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 0.5:
            return
        time.sleep(0.05)


def reference_p75(raw: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """p75 and count per metric from the raw beacons (a metric id counts once, last value)."""
    latest = {(b["name"], b["id"]): b["value"] for b in raw}
    out = {}
    for name in METRICS:
        values = [v for (n, _id), v in latest.items() if n == name]
        if len(values) >= 2:
            out[name] = (statistics.quantiles(values, n=4, method="inclusive")[2], len(values))
    return out


class TestRealBeacons:
    def test_thousand_beacons_give_the_raw_p75(self, tmp_path: Path) -> None:
        """At least 1,000 beacons sent by web-vitals in Chromium reach tower (at least 95% of
        each metric), and its p75 of LCP, INP, CLS, FCP and TTFB is within 5% of the p75
        computed from the raw beacons."""
        site = Site(web_vitals_script())
        with (
            serve_site(site) as origin,
            Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store,
        ):
            spec = parse_spec(
                '[service]\nname = "shop"\n[[server.projects]]\nname = "web"\n'
                f'allowed_origins = ["{origin}"]\nvitals_rate_limit = 100000\n',
                environ={},
            )
            with start_server(spec, store, monitors=False, notify=False) as server:
                key = next(p for p in load_projects(store) if p.name == "web").public_key
                tower = f"{server.url}/api/v1/vitals/web?sentry_key={key}"
                token = create_token(store, "reader", ["read"])[0]
                with chromium() as browser:
                    page = browser.new_page(viewport={"width": 1600, "height": 1000})
                    start = 0
                    deadline = time.monotonic() + 120
                    while len(site.raw) < WANTED and time.monotonic() < deadline:
                        page.goto(f"{origin}/top?start={start}&tower={httpx.URL(tower)}")
                        page.wait_for_timeout(150)  # the late headings have painted
                        boxes = page.evaluate(
                            "[...document.querySelectorAll('iframe')].map(f => {"
                            " const r = f.getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })"
                        )
                        for x, y in boxes:
                            page.mouse.click(x, y)
                        page.goto("about:blank")
                        _settle(lambda: len(site.raw), time.monotonic() + 10)
                        start += FRAMES
                    page.close()

                def summary() -> dict[str, Any]:
                    return httpx.get(
                        f"{server.url}/api/v1/vitals?by=none",
                        headers={"Authorization": f"Bearer {token}"},
                    ).json()

                def stored() -> int:
                    items = summary()["items"]
                    return sum(m["count"] for m in items[0]["metrics"].values()) if items else 0

                _settle(stored, time.monotonic() + 10)
                answer = summary()
        assert len(site.raw) >= WANTED
        expected = reference_p75(site.raw)
        assert set(expected) == set(METRICS), expected
        [group] = answer["items"]
        for name, (p75, count) in expected.items():
            stored = group["metrics"][name.lower()]
            # sendBeacon is best effort: under a loaded machine a handful of the beacons to
            # tower (up to 5% of one metric in one run seen) did not arrive while their copy
            # to the page's own server did. The cause is not established.
            assert count * 0.95 <= stored["count"] <= count, name
            assert stored["p75"] == pytest.approx(p75, rel=0.05, abs=1e-9), name
