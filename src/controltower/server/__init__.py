"""``tower serve``: the JSON API, Sentry-compatible ingestion, health and background services."""

from __future__ import annotations

from controltower.server.app import create_app
from controltower.server.context import ServerContext
from controltower.server.services import Service, ServiceRunner, register_service
from controltower.server.tokens import create_token, revoke_token, verify_token

__all__ = [
    "ServerContext",
    "Service",
    "ServiceRunner",
    "create_app",
    "create_token",
    "register_service",
    "revoke_token",
    "verify_token",
]
