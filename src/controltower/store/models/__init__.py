"""Store models, one module per subsystem. Importing this registers them all."""

from __future__ import annotations

from controltower.store.models.core import AuditEvent, Lock, Service

__all__ = ["AuditEvent", "Lock", "Service"]
