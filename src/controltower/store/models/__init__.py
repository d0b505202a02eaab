"""Store models, one module per subsystem. Importing this registers them all."""

from __future__ import annotations

from controltower.store.models.backup import Backup, BackupIncident, BackupVerification
from controltower.store.models.core import AuditEvent, Lock, Service
from controltower.store.models.notify import OutboxMessage

__all__ = [
    "AuditEvent",
    "Backup",
    "BackupIncident",
    "BackupVerification",
    "Lock", "OutboxMessage", "Service"]
