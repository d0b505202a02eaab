"""Store models, one module per subsystem. Importing this registers them all."""

from __future__ import annotations

from controltower.store.models.core import AuditEvent, Lock, Service
from controltower.store.models.dashboard import LoginSession, User
from controltower.store.models.notify import OutboxMessage

__all__ = ["AuditEvent", "Lock", "LoginSession", "OutboxMessage", "Service", "User"]
