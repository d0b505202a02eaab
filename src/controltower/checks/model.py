"""What a check is about and what it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Category(StrEnum):
    CONFIG = "config"
    SECURITY = "security"
    HEALTH = "health"
    PERFORMANCE = "performance"
    OBSERVABILITY = "observability"
    RELIABILITY = "reliability"
    DELIVERY = "delivery"


class Gate(IntEnum):
    """Go/no-go gates; gate N is passed when every check of gates 1..N passes."""

    CORE = 1
    PRODUCTION = 2
    DEPLOY = 3


GATE_NAMES = {
    Gate.CORE: "core infrastructure",
    Gate.PRODUCTION: "production readiness",
    Gate.DEPLOY: "deploy ready",
}


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def weight(self) -> int:
        return {"critical": 10, "high": 5, "medium": 3, "low": 1}[self.value]


class Status(StrEnum):
    """``advice``: failed, but does not matter on this target (``advice_reason`` says why)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    ADVICE = "advice"
    WAIVED = "waived"
    SKIP = "skip"

    @property
    def blocks(self) -> bool:
        return self in (Status.FAIL, Status.ERROR)

    @property
    def counted(self) -> bool:
        return self not in (Status.ADVICE, Status.SKIP)


@dataclass(frozen=True)
class Fix:
    """What to change: ``file`` and the exact ``lines`` to add or replace."""

    summary: str
    file: str = ""
    lines: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"summary": self.summary, "file": self.file, "lines": self.lines}


@dataclass(frozen=True)
class Location:
    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Item:
    """One result of an outside tool inside a finding: a hadolint rule hit, an advisory.

    ``rule`` is the tool's own code (DL3008, GHSA-...), ``level`` its level as the
    tool gives it (hadolint: error, warning, info, style; advisories: critical,
    high, moderate/medium, low); reports show each item with its file and line.
    """

    tool: str
    rule: str
    level: str
    message: str
    file: str = ""
    line: int = 0
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "rule": self.rule,
            "level": self.level,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "url": self.url,
        }


@dataclass(frozen=True)
class Outcome:
    """What a check returns. Messages name things, never secret values."""

    status: Status
    message: str
    fix: Fix | None = None
    location: Location | None = None
    details: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    items: tuple[Item, ...] = ()


def passed(message: str, *, items: list[Item] | tuple[Item, ...] = (), **data: Any) -> Outcome:
    return Outcome(Status.PASS, message, data=data, items=tuple(items))


def failed(
    message: str,
    fix: Fix | None = None,
    *,
    location: Location | None = None,
    details: list[str] | tuple[str, ...] = (),
    items: list[Item] | tuple[Item, ...] = (),
    **data: Any,
) -> Outcome:
    return Outcome(Status.FAIL, message, fix, location, tuple(details), data, tuple(items))


def warned(
    message: str,
    fix: Fix | None = None,
    *,
    location: Location | None = None,
    details: list[str] | tuple[str, ...] = (),
    items: list[Item] | tuple[Item, ...] = (),
    **data: Any,
) -> Outcome:
    return Outcome(Status.WARN, message, fix, location, tuple(details), data, tuple(items))


def skipped(message: str) -> Outcome:
    return Outcome(Status.SKIP, message)


@dataclass(frozen=True)
class Finding:
    """One check's outcome in a run, with the check's identity attached."""

    id: str
    title: str
    category: Category
    gate: Gate
    severity: Severity
    status: Status
    message: str
    fix: Fix | None = None
    location: Location | None = None
    details: tuple[str, ...] = ()
    advice_reason: str = ""
    hadolint: str = ""
    kind: str = "static"
    data: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0
    items: tuple[Item, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category.value,
            "gate": int(self.gate),
            "severity": self.severity.value,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix.to_dict() if self.fix else None,
            "location": str(self.location) if self.location else None,
            "details": list(self.details),
            "advice_reason": self.advice_reason,
            "hadolint": self.hadolint,
            "kind": self.kind,
            "data": self.data,
            "duration": round(self.duration, 4),
            "items": [item.to_dict() for item in self.items],
        }
