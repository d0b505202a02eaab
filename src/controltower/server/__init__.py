"""``tower serve``: the JSON API, Sentry-compatible ingestion, dashboard, status page,
health and metrics, and the background services (monitors, notifications)."""

from __future__ import annotations

from controltower.server.app import create_app
from controltower.server.context import ServerContext
from controltower.server.factory import open_store
from controltower.server.running import RunningServer, start_server
from controltower.server.services import Service, ServiceRunner, register_service
from controltower.server.tokens import create_token, revoke_token, verify_token

__all__ = [
    "RunningServer",
    "ServerContext",
    "Service",
    "ServiceRunner",
    "create_app",
    "create_token",
    "open_store",
    "register_service",
    "revoke_token",
    "start_server",
    "verify_token",
]
