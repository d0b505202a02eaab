"""What a notification says, independent of the channel that carries it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Notification:
    """A message for people. ``key`` identifies it: the same key is delivered once.

    ``kind`` is dotted: ``incident.firing``, ``incident.resolved``, ``incident.reminder``,
    ``incident.escalated``, ``deploy.started``, ``deploy.succeeded``, ``deploy.rolled_back``,
    ``deploy.failed``, ``error.new``, ``error.regressed``, ``error.spike``, ``backup.failed``.
    """

    key: str
    kind: str
    title: str
    text: str = ""
    severity: str = "info"
    service: str = ""
    environment: str = ""
    url: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Notification:
        known = {name: payload[name] for name in cls.__dataclass_fields__ if name in payload}
        return cls(**known)
