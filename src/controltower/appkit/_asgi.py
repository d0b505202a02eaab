"""ASGI middleware answering the health paths in front of any ASGI app."""

from __future__ import annotations

from typing import Any

from controltower.appkit._health import Health, HealthEndpoint


class HealthMiddleware:
    """Answer ``health``'s paths; pass everything else (and non-HTTP scopes) to ``app``."""

    def __init__(self, app: Any, *, health: Health) -> None:
        self.app = app
        self.endpoints = {
            path: HealthEndpoint(health, kind) for path, kind in health.paths().items()
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
