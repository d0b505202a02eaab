"""Store models, one module per subsystem. Importing this registers them all."""

from __future__ import annotations

from controltower.store.models.core import AuditEvent, Lock, Service
from controltower.store.models.ingest import (
    CspReport,
    ErrorEvent,
    ErrorIssue,
    ErrorIssueHour,
    Project,
)
from controltower.store.models.notify import OutboxMessage
from controltower.store.models.server import ApiToken, DashboardSession

__all__ = [
    "ApiToken",
    "AuditEvent",
    "CspReport",
    "DashboardSession",
    "ErrorEvent",
    "ErrorIssue",
    "ErrorIssueHour",
    "Lock",
    "OutboxMessage",
    "Project",
    "Service",
]
