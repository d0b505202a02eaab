"""Alert rules for errors: a new or regressed issue at a minimum level, and spikes.

Notifications go through ``controltower.notify.enqueue`` in the writer's
transaction with keys ``error:<issue>:new``, ``error:<issue>:regressed:<n>`` and
``error:<issue>:spike:<window start>``, so a retried batch notifies once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from controltower.ingest.event import ParsedEvent
from controltower.notify import Notification, enqueue
from controltower.spec import Spec
from controltower.spec.alerts import ChannelType
from controltower.spec.server import LEVEL_ORDER, parse_spike
from controltower.store.models.ingest import ErrorEvent, ErrorIssue, Project


@dataclass(frozen=True)
class ErrorAlertRules:
    channels: list[str] = field(default_factory=list)
    min_level: str = "error"
    spike_count: int = 0
    spike_window: float = 0.0
    public_url: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def notifies(self, level: str) -> bool:
        return LEVEL_ORDER.get(level, 3) >= LEVEL_ORDER.get(self.min_level, 3)

    @classmethod
    def from_spec(cls, spec: Spec) -> ErrorAlertRules:
        """Rules from ``[server.error_alerts]``; channels default to the first resend channel."""
        config = spec.server.error_alerts
        if not config.enabled:
            return cls()
        channels = list(config.channels)
        if not channels:
            resend = [
                name
                for name, channel in spec.alerts.channels.items()
                if channel.type is ChannelType.RESEND
            ]
            channels = resend[:1] or list(spec.alerts.default_channels)
        count, window = parse_spike(config.spike) if config.spike else (0, 0.0)
        return cls(
            channels=channels,
            min_level=config.min_level.value,
            spike_count=count,
            spike_window=window,
            public_url=spec.server.public_url,
        )


def apply_rules(
    session: Session,
    groups: Mapping[tuple[int, str], Sequence[ParsedEvent]],
    ids: Mapping[tuple[int, str], int],
    rules: ErrorAlertRules,
    new_issues: Sequence[int],
    regressed: Sequence[int],
    now: datetime,
) -> list[int]:
    """Enqueue the notifications a written batch calls for, in its transaction:
    ``groups`` are its events by (project, fingerprint), ``ids`` their issues.
    Returns the issues that spiked."""
    names = {row[0]: row[1] for row in session.execute(select(Project.id, Project.name))}
    for key, events in groups.items():
        issue_id = ids[key]
        event = events[0]
        project = names.get(key[0], str(key[0]))
        if issue_id in new_issues and rules.notifies(event.level):
            _notify(session, rules, issue_id, "new", f"error:{issue_id}:new", project, event)
        if issue_id in regressed:
            count = session.scalar(select(ErrorIssue.count).where(ErrorIssue.id == issue_id))
            _notify(
                session,
                rules,
                issue_id,
                "regressed",
                f"error:{issue_id}:regressed:{count}",
                project,
                event,
            )
    if rules.spike_count:
        return _spikes(session, groups, ids, rules, now, names)
    return []


def _spikes(
    session: Session,
    groups: Mapping[tuple[int, str], Sequence[ParsedEvent]],
    ids: Mapping[tuple[int, str], int],
    rules: ErrorAlertRules,
    now: datetime,
    names: dict[int, str],
) -> list[int]:
    spiked: list[int] = []
    since = now - timedelta(seconds=rules.spike_window)
    for key, events in groups.items():
        issue_id = ids[key]
        total, notified_at = session.execute(
            select(ErrorIssue.count, ErrorIssue.spike_notified_at).where(ErrorIssue.id == issue_id)
        ).one()
        if total < rules.spike_count:
            continue
        if notified_at is not None and notified_at > since:
            continue
        recent = session.scalar(
            select(func.count())
            .select_from(ErrorEvent)
            .where(ErrorEvent.issue_id == issue_id, ErrorEvent.received_at >= since)
        )
        if (recent or 0) < rules.spike_count:
            continue
        session.execute(
            update(ErrorIssue)
            .where(ErrorIssue.id == issue_id)
            .values(spike_notified_at=now)
            .execution_options(synchronize_session=False)
        )
        window = int(now.timestamp() // max(rules.spike_window, 1.0))
        _notify(
            session,
            rules,
            issue_id,
            "spike",
            f"error:{issue_id}:spike:{window}",
            names.get(key[0], str(key[0])),
            events[0],
            extra={"events": f"{recent} in {int(rules.spike_window)}s"},
        )
        spiked.append(issue_id)
    return spiked


def _notify(
    session: Session,
    rules: ErrorAlertRules,
    issue_id: int,
    what: str,
    key: str,
    project: str,
    event: ParsedEvent,
    extra: dict[str, str] | None = None,
) -> None:
    heading = {"new": "New error", "regressed": "Regressed error", "spike": "Error spike"}[what]
    severity = "critical" if event.level == "fatal" or what == "spike" else "warning"
    url = f"{rules.public_url.rstrip('/')}/errors/{issue_id}" if rules.public_url else ""
    enqueue(
        session,
        Notification(
            key=key,
            kind=f"error.{what}",
            title=f"{heading} in {project}: {event.title}"[:300],
            text=event.culprit,
            severity=severity,
            service=project,
            environment=event.environment,
            url=url,
            fields={
                "issue": str(issue_id),
                "level": event.level,
                "release": event.release,
                **(extra or {}),
            },
            labels={"project": project, "kind": f"error.{what}"},
        ),
        rules.channels,
    )
