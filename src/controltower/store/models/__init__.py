"""Store models, one module per subsystem. Importing this registers them all."""

from __future__ import annotations

from controltower.store.models.backup import Backup, BackupIncident, BackupVerification
from controltower.store.models.checks import CheckFindingRow, CheckRunRow
from controltower.store.models.core import AuditEvent, Lock, Service
from controltower.store.models.dashboard import LoginFailure, LoginNonce, LoginSession, User
from controltower.store.models.deploy import Release, ReleaseStep
from controltower.store.models.ingest import (
    CspReport,
    ErrorEvent,
    ErrorIssue,
    ErrorIssueHour,
    Project,
)
from controltower.store.models.load import LoadRun
from controltower.store.models.monitor import (
    Incident,
    IncidentEvent,
    MonitorResult,
    MonitorRollup,
    MonitorState,
    Silence,
)
from controltower.store.models.notify import OutboxMessage
from controltower.store.models.server import ApiToken, DashboardSession, Epoch
from controltower.store.models.sourcemaps import (
    ArtifactBundle,
    ArtifactFile,
    SentryRelease,
    UploadChunk,
)
from controltower.store.models.vitals import WebVital

__all__ = [
    "ApiToken",
    "ArtifactBundle",
    "ArtifactFile",
    "AuditEvent",
    "Backup",
    "BackupIncident",
    "BackupVerification",
    "CheckFindingRow",
    "CheckRunRow",
    "CspReport",
    "DashboardSession",
    "Epoch",
    "ErrorEvent",
    "ErrorIssue",
    "ErrorIssueHour",
    "Incident",
    "IncidentEvent",
    "LoadRun",
    "Lock",
    "LoginFailure",
    "LoginNonce",
    "LoginSession",
    "MonitorResult",
    "MonitorRollup",
    "MonitorState",
    "OutboxMessage",
    "Project",
    "Release",
    "ReleaseStep",
    "SentryRelease",
    "Service",
    "Silence",
    "UploadChunk",
    "User",
    "WebVital",
]
