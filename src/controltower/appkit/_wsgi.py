"""WSGI middleware answering the health paths in front of any WSGI app (Flask, Django)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controltower.appkit._health import Health

_REASONS = {200: "200 OK", 405: "405 Method Not Allowed", 503: "503 Service Unavailable"}


def health_response(health: Health, kind: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of one health endpoint, computed synchronously."""
    report = None if kind == "live" else health.run_sync()
    status, body, content_type = health.respond(kind, report)
    headers = [
        ("Content-Type", content_type.decode()),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    return _REASONS.get(status, str(status)), headers, body


class HealthWSGI:
    """Answer ``health``'s paths; pass everything else to ``app``."""

    def __init__(self, app: Any, *, health: Health) -> None:
        self.app = app
        self.health = health
        self.kinds = health.paths()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        kind = self.kinds.get(environ.get("PATH_INFO", ""))
        if kind is None:
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response(_REASONS[405], [("Allow", "GET, HEAD"), ("Content-Length", "0")])
            return [b""]
        status, headers, body = health_response(self.health, kind)
        start_response(status, headers)
        return [body]
