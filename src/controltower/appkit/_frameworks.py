"""Mounting appkit on Starlette/FastAPI, Flask and Django apps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controltower.appkit._headers import NONCE_KEY, SecurityHeaders, SecurityHeadersWSGI
from controltower.appkit._metrics import ROUTE_KEY, MetricsMiddleware, MetricsWSGI
from controltower.appkit._wsgi import health_response

if TYPE_CHECKING:
    from controltower.appkit._health import Health
    from controltower.appkit._metrics import Metrics

_HINT = "for another ASGI app use health.asgi(app), for another WSGI app health.wsgi(app)"


def _is_starlette(app: Any) -> bool:
    return hasattr(app, "add_route") and hasattr(app, "add_middleware")


def _is_flask(app: Any) -> bool:
    return hasattr(app, "add_url_rule") and hasattr(app, "wsgi_app")


def mount_health(health: Health, app: Any) -> Any:
    from controltower.appkit._health import HealthEndpoint

    if _is_starlette(app):
        for path, kind in health.paths().items():
            app.add_route(
                path, HealthEndpoint(health, kind), methods=["GET", "HEAD"], include_in_schema=False
            )
        return app
    if _is_flask(app):
        for path, kind in health.paths().items():
            app.add_url_rule(
                path,
                f"controltower_health_{kind}",
                _flask_view(health, kind),
                methods=["GET", "HEAD"],
            )
        return app
    raise TypeError(
        f"health.mount() knows Starlette, FastAPI and Flask apps, not {type(app).__name__}; {_HINT}"
    )


def _flask_view(health: Health, kind: str) -> Any:
    def view() -> Any:
        from flask import Response

        status, headers, body = health_response(health, kind)
        return Response(body, status=int(status.split(" ", 1)[0]), headers=headers)

    return view


def mount_metrics(metrics: Metrics, app: Any) -> Any:
    if _is_starlette(app):
        app.add_middleware(MetricsMiddleware, metrics=metrics, serve_endpoint=False)
        app.add_route(metrics.path, metrics.endpoint, methods=["GET"], include_in_schema=False)
        return app
    if _is_flask(app):
        from flask import request

        def remember_route() -> None:
            if request.url_rule is not None:
                request.environ[ROUTE_KEY] = request.url_rule.rule

        app.before_request(remember_route)
        app.wsgi_app = MetricsWSGI(app.wsgi_app, metrics=metrics)
        return app
    raise TypeError(
        f"metrics.mount() knows Starlette, FastAPI and Flask apps, not {type(app).__name__}; "
        "for another app use metrics.asgi(app) or metrics.wsgi(app)"
    )


def secure(app: Any, **options: Any) -> Any:
    """Add security headers to a Starlette/FastAPI or Flask app (``HeaderPolicy`` options)."""
    if _is_starlette(app):
        app.add_middleware(SecurityHeaders, **options)
        return app
    if _is_flask(app):
        from flask import request

        app.wsgi_app = SecurityHeadersWSGI(app.wsgi_app, **options)
        app.jinja_env.globals["csp_nonce"] = lambda: request.environ.get(NONCE_KEY, "")
        return app
    raise TypeError(
        f"secure() knows Starlette, FastAPI and Flask apps, not {type(app).__name__}; "
        "wrap another app in SecurityHeaders(app) (ASGI) or SecurityHeadersWSGI(app) (WSGI)"
    )


def django_health_urls(health: Health) -> list[Any]:
    from django.http import HttpResponse
    from django.urls import path

    def view_for(kind: str) -> Any:
        def view(request: Any) -> Any:
            if request.method not in ("GET", "HEAD"):
                return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
            status, headers, body = health_response(health, kind)
            return HttpResponse(body, status=int(status.split(" ", 1)[0]), headers=dict(headers))

        return view

    return [
        path(route.lstrip("/"), view_for(kind), name=f"controltower-health-{kind}")
        for route, kind in health.paths().items()
    ]
