"""The store: all of tower's state in SQLite (default) or PostgreSQL."""

from __future__ import annotations

from controltower.store.audit import record_audit, service_id
from controltower.store.engine import ENV_URL, Store, redact_url, resolve_url
from controltower.store.locks import Locks, default_owner

__all__ = [
    "ENV_URL",
    "Locks",
    "Store",
    "default_owner",
    "record_audit",
    "redact_url",
    "resolve_url",
    "service_id",
]
