"""Store models, one module per subsystem. Importing this registers them all."""

from __future__ import annotations

from controltower.store.models.core import AuditEvent, Lock, Service
from controltower.store.models.monitor import (
    Incident,
    IncidentEvent,
    MonitorResult,
    MonitorRollup,
    MonitorState,
    Silence,
)
from controltower.store.models.notify import OutboxMessage

__all__ = [
    "AuditEvent",
    "Incident",
    "IncidentEvent",
    "Lock",
    "MonitorResult",
    "MonitorRollup",
    "MonitorState",
    "OutboxMessage",
    "Service",
    "Silence",
]
