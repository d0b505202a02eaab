"""Backups of PostgreSQL and of the configuration, with restores that are proven."""

from __future__ import annotations

from controltower.backup.archive import BackupCorrupt, BackupMeta
from controltower.backup.run import BackupResult, run_backup
from controltower.backup.verify import RestoreResult, VerifyResult, restore_backup, verify_backup

__all__ = [
    "BackupCorrupt",
    "BackupMeta",
    "BackupResult",
    "RestoreResult",
    "VerifyResult",
    "restore_backup",
    "run_backup",
    "verify_backup",
]
