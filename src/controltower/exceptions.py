"""Every error a user can cause is a ``TowerError``.

The hierarchy::

    TowerError
    ├── SpecError            tower.toml is missing, unreadable or invalid (exit 2)
    ├── UsageError           a command was called with arguments that do not fit (exit 2)
    ├── StoreError           the store cannot be opened or migrated
    │   └── LockHeld         a lock is held by another owner
    ├── CheckError           a readiness check could not run
    ├── LoadTestError        a load test could not run
    ├── DeployError          a deploy could not start or finish
    │   └── DriverError      a deploy driver failed to act on the platform
    ├── MonitorError         a monitor could not be scheduled or run
    ├── NotifyError          a notification channel refused or failed a delivery
    ├── IngestError          an error event or report was rejected
    ├── BackupError          a backup, restore or verification failed
    └── GenerateError        a file could not be generated

Each message says what was wrong, where, and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass


class TowerError(Exception):
    """Base of every error controltower raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


@dataclass(frozen=True, order=True)
class SpecIssue:
    """One problem in a spec file, located by file, line and key path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class SpecError(TowerError):
    """The spec could not be loaded; ``issues`` lists every problem found."""

    exit_code = 2

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = sorted(issues)
        count = len(self.issues)
        head = f"{count} error{'s' if count != 1 else ''} in the spec"
        super().__init__(head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues))


class UsageError(TowerError):
    exit_code = 2


class StoreError(TowerError):
    pass


class LockHeld(StoreError):
    def __init__(self, name: str, owner: str, *, hint: str | None = None) -> None:
        super().__init__(f"lock {name!r} is held by {owner}", hint=hint)
        self.name = name
        self.owner = owner


class CheckError(TowerError):
    pass


class LoadTestError(TowerError):
    pass


class DeployError(TowerError):
    pass


class DriverError(DeployError):
    pass


class MonitorError(TowerError):
    pass


class NotifyError(TowerError):
    pass


class IngestError(TowerError):
    pass


class BackupError(TowerError):
    pass


class GenerateError(TowerError):
    pass
