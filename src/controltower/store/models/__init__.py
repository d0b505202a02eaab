"""Store models, one module per subsystem. Importing this registers them all."""

from __future__ import annotations

from controltower.store.models.checks import CheckFindingRow, CheckRunRow
from controltower.store.models.backup import Backup, BackupIncident, BackupVerification
from controltower.store.models.core import AuditEvent, Lock, Service
from controltower.store.models.load import LoadRun
from controltower.store.models.ingest import (
    CspReport,
    ErrorEvent,
    ErrorIssue,
    ErrorIssueHour,
    Project,
)
from controltower.store.models.dashboard import LoginSession, User
from controltower.store.models.notify import OutboxMessage
from controltower.store.models.server import ApiToken, DashboardSession

__all__ = ["AuditEvent", "CheckFindingRow", "CheckRunRow", "Lock", "OutboxMessage", "Service"]
__all__ = ["AuditEvent", "LoadRun", "Lock", "OutboxMessage", "Service"]
from controltower.store.models.deploy import Release, ReleaseStep
__all__ = ["AuditEvent", "Lock", "OutboxMessage", "Release", "ReleaseStep", "Service"]
from controltower.store.models.monitor import (
    Incident,
    IncidentEvent,
    MonitorResult,
    MonitorRollup,
    MonitorState,
    Silence,
)
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
    "ApiToken",
    "CspReport",
    "DashboardSession",
    "ErrorEvent",
    "ErrorIssue",
    "ErrorIssueHour",
    "Project",
]
    "Backup",
    "BackupIncident",
    "BackupVerification",
    "Lock", "OutboxMessage", "Service"]
__all__ = ["AuditEvent", "Lock", "LoginSession", "OutboxMessage", "Service", "User"]
