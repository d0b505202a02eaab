"""Prometheus request metrics for ASGI and WSGI apps, and the ``/metrics`` endpoint."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.registry import Collector

ROUTE_KEY = "controltower.route"
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DEFAULT_EXCLUDE = ("/metrics", "/api/health", "/api/health/live", "/api/simple-health")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PLACEHOLDER = re.compile(r"\{[^/{}]+\}|<[^/<>]+>|:[A-Za-z_]\w*")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


class Metrics:
    """Request count, latency histogram and in-flight gauge, labelled by method, route and status class.

    ``route`` is always a template (``/items/{id}``), never a raw path, so label
    cardinality stays bounded: the framework's matched route when there is one,
    else the first of ``templates`` matching the path, else ``<unmatched>``.
    With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn with several workers) the
    endpoint aggregates every worker's files.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "",
        path: str = "/metrics",
        exclude_paths: Iterable[str] = DEFAULT_EXCLUDE,
        templates: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        process_metrics: bool = True,
    ) -> None:
        self.multiprocess = multiprocess_dir() is not None
        self.registry = registry if registry is not None else CollectorRegistry()
        self.path = path
        self.exclude = frozenset({path, *exclude_paths})
        self._templates = [(re.compile(_template_regex(t)), t) for t in templates]
        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled",
            labels,
            namespace=namespace,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency in seconds",
            labels,
            namespace=namespace,
            buckets=buckets,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being handled",
            ("method",),
            namespace=namespace,
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        if process_metrics and not self.multiprocess:
            ProcessCollector(registry=self.registry)
        self.endpoint = MetricsEndpoint(self)

    def register(self, collector: Collector) -> None:
        """Export another collector (e.g. an ``ErrorReporter``'s counters) on this endpoint."""
        self.registry.register(collector)

    def route_for_path(self, path: str) -> str:
        for pattern, template in self._templates:
            if pattern.fullmatch(path):
                return template
        return UNMATCHED

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        status_class = _status_class(status)
        self.requests.labels(method, route, status_class).inc()
        self.latency.labels(method, route, status_class).observe(seconds)

    def exposition(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    # -- mounting --------------------------------------------------------
    def asgi(self, app: Any) -> MetricsMiddleware:
        return MetricsMiddleware(app, metrics=self)

    def wsgi(self, app: Any) -> MetricsWSGI:
        return MetricsWSGI(app, metrics=self)

    def mount(self, app: Any) -> Any:
        """Add the middleware and ``/metrics`` to a Starlette/FastAPI or Flask app (returns the app)."""
        from controltower.appkit._frameworks import mount_metrics

        return mount_metrics(self, app)


def _template_regex(template: str) -> str:
    parts = _PLACEHOLDER.split(template)
    return "[^/]+".join(re.escape(part) for part in parts)


def _asgi_route(scope: Any) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    return path if isinstance(path, str) else None


class MetricsEndpoint:
    """A plain ASGI app serving the Prometheus exposition."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = self.metrics.exposition()
        headers = [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """ASGI middleware recording every HTTP request not under an excluded path."""

    def __init__(self, app: Any, *, metrics: Metrics, serve_endpoint: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.serve_endpoint = serve_endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.metrics.exclude:
            if self.serve_endpoint and path == self.metrics.path:
                await self.metrics.endpoint(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        metrics = self.metrics
        method = scope["method"]
        gauge = metrics.in_progress.labels(method if method in METHODS else "OTHER")
        status = 500
        started = time.perf_counter()

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        gauge.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            gauge.dec()
            route = _asgi_route(scope) or metrics.route_for_path(path)
            metrics.observe(method, route, status, time.perf_counter() - started)


class MetricsWSGI:
    """WSGI middleware recording every request not under an excluded path; serves ``/metrics``."""

    def __init__(self, app: Any, *, metrics: Metrics, serve_endpoint: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.serve_endpoint = serve_endpoint

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        metrics = self.metrics
        if path in metrics.exclude:
            if self.serve_endpoint and path == metrics.path:
                body = metrics.exposition()
                start_response(
                    "200 OK",
                    [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))],
                )
                return [body]
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        method = environ.get("REQUEST_METHOD", "GET")
        gauge = metrics.in_progress.labels(method if method in METHODS else "OTHER")
        seen = {"status": 500}
        started = time.perf_counter()

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        def finish() -> None:
            gauge.dec()
            route = environ.get(ROUTE_KEY) or metrics.route_for_path(path)
            metrics.observe(method, route, seen["status"], time.perf_counter() - started)

        gauge.inc()
        try:
            body = self.app(environ, start)
        except BaseException:
            finish()
            raise
        return _Closing(body, finish)


class _Closing:
    """Wraps a WSGI body so ``finish`` runs once, when the server closes it."""

    def __init__(self, body: Iterable[bytes], finish: Any) -> None:
        self.body = body
        self.finish = finish

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.finish()
