"""Metrics middleware: bounded route labels, exclusions, in-flight gauge, process metrics, multiprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controltower.appkit import Health, Metrics
from tests.appkit_support import serve_asgi, serve_wsgi
from tests.conftest import free_port, wait_for_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def requests_total(text: str, route: str, status: str = "2xx", method: str = "GET") -> float:
    key = ("http_requests_total", (("method", method), ("route", route), ("status", status)))
    return samples(text).get(key, 0.0)


def starlette_app(metrics: Metrics) -> object:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def item(request: object) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"]})  # type: ignore[attr-defined]

    async def boom(request: object) -> JSONResponse:
        return JSONResponse({"error": "x"}, status_code=500)

    app = Starlette(routes=[Route("/items/{item_id}", item), Route("/boom", boom)])
    Health().mount(app)
    metrics.mount(app)
    return app


class TestAsgi:
    def test_route_templates_bound_cardinality(self) -> None:
        """Fifty different item ids share one route label; unknown paths share '<unmatched>'."""
        metrics = Metrics()
        with serve_asgi(starlette_app(metrics)) as url, httpx.Client() as client:
            for i in range(50):
                client.get(f"{url}/items/{i}")
            for i in range(20):
                client.get(f"{url}/random/{i}")
            client.get(f"{url}/boom")
            text = client.get(f"{url}/metrics").text
        assert requests_total(text, "/items/{item_id}") == 50
        assert requests_total(text, "<unmatched>", "4xx") == 20
        assert requests_total(text, "/boom", "5xx") == 1
        routes = {labels for (name, labels) in samples(text) if name == "http_requests_total"}
        assert len(routes) == 3
        assert "/random/1" not in text

    def test_health_and_metrics_paths_are_excluded(self) -> None:
        """Requests to the health and metrics endpoints are not counted."""
        metrics = Metrics()
        with serve_asgi(starlette_app(metrics)) as url, httpx.Client() as client:
            for _ in range(5):
                client.get(f"{url}/api/health")
                client.get(f"{url}/api/health/live")
            text = client.get(f"{url}/metrics").text
        assert "/api/health" not in text and 'route="/metrics"' not in text

    def test_latency_histogram_in_flight_and_process_metrics(self) -> None:
        """The latency histogram, in-flight gauge and process memory/CPU are exported."""
        metrics = Metrics()
        with serve_asgi(starlette_app(metrics)) as url, httpx.Client() as client:
            client.get(f"{url}/items/1")
            text = client.get(f"{url}/metrics").text
        found = samples(text)
        count = (
            "http_request_duration_seconds_count",
            (("method", "GET"), ("route", "/items/{item_id}"), ("status", "2xx")),
        )
        assert found[count] == 1
        assert found[("http_requests_in_progress", (("method", "GET"),))] == 0
        assert found[("process_resident_memory_bytes", ())] > 0
        assert ("process_cpu_seconds_total", ()) in found

    def test_templates_for_plain_asgi_apps(self) -> None:
        """A plain ASGI app without a router gets route labels from the given templates."""

        async def app(scope: dict[str, object], receive: object, send: object) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

        metrics = Metrics(templates=["/users/{id}/orders/{order}", "/users/:id"])
        with serve_asgi(metrics.asgi(app)) as url, httpx.Client() as client:
            client.get(f"{url}/users/7/orders/9")
            client.get(f"{url}/users/8")
            client.get(f"{url}/elsewhere")
            text = client.get(f"{url}/metrics").text
        assert requests_total(text, "/users/{id}/orders/{order}") == 1
        assert requests_total(text, "/users/:id") == 1
        assert requests_total(text, "<unmatched>") == 1


class TestWsgi:
    def test_flask_route_rules_and_endpoint(self) -> None:
        """On Flask, labels are the URL rule; /metrics is served by the middleware.

        A WSGI request is recorded when the server closes its body, which may be
        just after the client has read the response, so the scrape is retried
        briefly until the last request shows up.
        """
        from flask import Flask

        app = Flask(__name__)

        @app.get("/orders/<int:order_id>")
        def order(order_id: int) -> dict[str, int]:
            return {"id": order_id}

        metrics = Metrics()
        metrics.mount(app)
        with serve_wsgi(app) as url, httpx.Client() as client:
            for i in range(10):
                client.get(f"{url}/orders/{i}")
            client.get(f"{url}/nothing")
            deadline = time.monotonic() + 2
            response = client.get(f"{url}/metrics")
            while requests_total(response.text, "<unmatched>", "4xx") < 1:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
                response = client.get(f"{url}/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        assert requests_total(response.text, "/orders/<int:order_id>") == 10
        assert requests_total(response.text, "<unmatched>", "4xx") == 1


class TestMultiprocess:
    def test_workers_are_aggregated(self, tmp_path: Path) -> None:
        """With PROMETHEUS_MULTIPROC_DIR, the endpoint sums the counters of every worker process."""
        script = textwrap.dedent(
            """
            import sys
            from controltower.appkit import Metrics
            metrics = Metrics()
            for _ in range(int(sys.argv[1])):
                metrics.observe("GET", "/items/{id}", 200, 0.01)
            if sys.argv[2] == "print":
                sys.stdout.write(metrics.exposition().decode())
            """
        )
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        for count in (3, 4):
            subprocess.run(
                [sys.executable, "-c", script, str(count), "quiet"], env=env, check=True, timeout=60
            )
        out = subprocess.run(
            [sys.executable, "-c", script, "0", "print"],
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        ).stdout
        assert requests_total(out, "/items/{id}") == 7


GUNICORN_APP = """
import os
from flask import Flask
from controltower.appkit import Metrics

app = Flask(__name__)

@app.get("/items/<int:item_id>")
def item(item_id):
    return {"id": item_id, "pid": os.getpid()}

Metrics().mount(app)
"""


@pytest.mark.slow
@pytest.mark.xdist_group("appkit-heavy")
class TestGunicorn:
    def test_documented_multiprocess_setup(self, tmp_path: Path) -> None:
        """Under gunicorn with two workers and the gunicorn.conf.py of docs/appkit.md, /metrics
        counts every request whichever worker served it."""
        from tests.test_appkit_docs import snippet

        (tmp_path / "app.py").write_text(GUNICORN_APP)
        (tmp_path / "gunicorn.conf.py").write_text(snippet("gunicorn-conf"))
        prom = tmp_path / "prom"
        prom.mkdir()
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{port}",
                "app:app",
            ],
            cwd=tmp_path,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(prom)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(port)
            pids = set()
            deadline = time.monotonic() + 30
            served = 0
            while (len(pids) < 2 or served < 20) and time.monotonic() < deadline:
                with httpx.Client() as client:  # a new connection each time: any worker may answer
                    pids.add(client.get(f"http://127.0.0.1:{port}/items/{served}").json()["pid"])
                served += 1
            assert len(pids) == 2, "both workers served requests"
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            assert requests_total(text, "/items/<int:item_id>") == served
            assert "process_resident_memory_bytes" not in text
        finally:
            server.terminate()
            server.wait(15)
