"""The alerting pass: monitor counters -> alerts -> grouped incidents -> outbox rows.

One process at a time runs it (the holder of the ``monitor-alerting`` lease).
Each pass reads the monitors that are failing or attached to an incident, moves
their alerts and incidents, and enqueues notifications whose keys make every
step idempotent: ``incident:<id>:firing:<severity>``, ``incident:<id>:reminder:<n>``,
``incident:<id>:escalated``, ``incident:<id>:resolved``. A pass that crashes
halfway commits nothing; the next one redoes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.orm import Session

from controltower.monitor import incidents as inc
from controltower.monitor.rules import (
    FIRING,
    OK,
    PENDING,
    SEVERITY_RANK,
    SUPPRESSED,
    alert_status,
    failing_dependency,
    unseen_outage,
    worse,
)
from controltower.monitor.silences import SilenceView, active_silences, suppressing
from controltower.notify import enqueue
from controltower.notify.routing import channels_for, escalation_for, matching_routes
from controltower.spec.alerts import AlertsSpec
from controltower.spec.monitors import MonitorSpec
from controltower.store import Store
from controltower.store.models.monitor import Incident, MonitorState
from controltower.units import format_duration

DEFAULT_REPEAT = 3600.0
PASS_LOCK = 0x70_0000_0000  # + service id: the advisory lock of one service's passes


@dataclass
class PassSummary:
    """What one alerting pass did, for logs and tests."""

    opened: int = 0
    fired: int = 0
    notified: int = 0
    resolved: int = 0
    enqueued: int = 0


def alert_labels(
    service: str, environment: str, monitor: MonitorSpec, severity: str
) -> dict[str, str]:
    return {
        "service": service,
        "environment": environment,
        "monitor": monitor.name,
        "type": monitor.type.value,
        **monitor.labels,
        "severity": severity,
    }


class Alerting:
    def __init__(
        self,
        store: Store,
        *,
        service_id: int,
        service: str,
        environment: str,
        monitors: list[MonitorSpec],
        alerts: AlertsSpec,
    ) -> None:
        self.store = store
        self.service_id = service_id
        self.service = service
        self.environment = environment
        self.monitors = {monitor.name: monitor for monitor in monitors}
        self.depends = {monitor.name: list(monitor.depends_on) for monitor in monitors}
        self.alerts = alerts

    def labels(self, monitor: MonitorSpec, severity: str) -> dict[str, str]:
        return alert_labels(self.service, self.environment, monitor, severity)

    def run_pass(self, now: datetime) -> PassSummary:
        summary = PassSummary()
        with self.store.session() as session:
            self._pass(session, now, summary)
        return summary

    def _pass(self, session: Session, now: datetime, summary: PassSummary) -> None:
        if self.store.is_postgres:
            # One pass at a time per service, even if two workers briefly both
            # believe they hold the alerting lease (a slow renewal).
            session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PASS_LOCK + self.service_id}
            )
        rows = {
            row.name: row
            for row in session.scalars(
                select(MonitorState).where(
                    MonitorState.service_id == self.service_id,
                    or_(
                        MonitorState.failing_since.is_not(None),
                        MonitorState.incident_id.is_not(None),
                        MonitorState.alert_status != OK,
                        MonitorState.consecutive_failures > 0,
                    ),
                )
            )
        }
        down = {
            name
            for name, row in rows.items()
            if row.consecutive_failures > 0
            or (row.failing_since is not None and row.recovered_since is None)
        }
        incidents = {
            row.id: row
            for row in session.scalars(
                select(Incident)
                .where(Incident.service_id == self.service_id, Incident.open_key.is_not(None))
                .with_for_update()
            )
        }
        by_key = {row.open_key: row for row in incidents.values()}
        messages = {name: row.last_message for name, row in rows.items()}
        for name in sorted(rows, key=lambda n: (len(self.depends.get(n, [])), n)):
            row = rows[name]
            monitor = self.monitors.get(name)
            status = alert_status(monitor, row, now) if monitor is not None else OK
            if (
                status == OK
                and monitor is not None
                and unseen_outage(
                    monitor, row, judged=row.alert_status, incident_id=row.incident_id
                )
            ):
                # It failed and recovered while no pass ran: it fires now and the
                # next pass resolves it, so the outage is paged, late, not missed.
                assert row.failing_since is not None and row.recovered_since is not None
                status = FIRING
                messages[name] = (
                    f"failed from {row.failing_since:%H:%M:%S} to "
                    f"{row.recovered_since:%H:%M:%S} UTC; recovered before an alerting "
                    "pass saw it"
                )
            if status == OK:
                self._clear(session, row, incidents, now)
                continue
            assert monitor is not None
            severity = row.level if row.level in ("warning", "critical") else row.alert_severity
            severity = severity or monitor.severity.value
            blocker = failing_dependency(monitor, down, self.depends)
            if blocker is not None:
                self._suppress(session, row, blocker, rows, incidents, now)
                continue
            incident = incidents.get(row.incident_id or -1)
            labels = self.labels(monitor, severity)
            routes = matching_routes(self.alerts, severity=severity, labels=labels)
            group_by = routes[0].group_by if routes else ["service"]
            group_wait = routes[0].group_wait if routes else 0.0
            if incident is None:
                key = f"{self.service_id}:" + ",".join(f"{k}={labels.get(k, '')}" for k in group_by)
                incident = by_key.get(key)
                if incident is None:
                    incident = Incident(
                        service_id=self.service_id,
                        group_key=key,
                        open_key=key,
                        title=f"{monitor.name} is failing",
                        status=inc.PENDING,
                        severity=severity,
                        labels={k: labels.get(k, "") for k in group_by},
                        monitors=[],
                        started_at=now,
                        channels=[],
                    )
                    session.add(incident)
                    session.flush()
                    incidents[incident.id] = incident
                    by_key[key] = incident
                    summary.opened += 1
                    inc.add_event(
                        session, incident, "opened", f"{monitor.name}: {messages[name]}", at=now
                    )
            if name not in incident.monitors:
                if incident.monitors:
                    inc.add_event(
                        session,
                        incident,
                        "joined",
                        f"{monitor.name} is failing too: {messages[name]}",
                        at=now,
                    )
                    incident.title = f"{', '.join([*incident.monitors, name])} failing"
                incident.monitors = [*incident.monitors, name]
            row.incident_id = incident.id
            row.alert_status = status
            row.alert_severity = severity
            if incident.status != inc.RESOLVED:
                incident.severity = worse(incident.severity, severity)
            waited = (now - incident.started_at).total_seconds() >= group_wait
            if status == FIRING and incident.status == inc.PENDING and waited:
                incident.status = inc.FIRING
                incident.firing_at = now
                summary.fired += 1
                inc.add_event(
                    session, incident, "firing", f"{monitor.name}: {messages[name]}", at=now
                )
        silences = active_silences(session, self.service_id, now)
        for incident in list(incidents.values()):
            members = [
                row
                for row in rows.values()
                if row.incident_id == incident.id and row.alert_status in (PENDING, FIRING)
            ]
            if not members:
                summary.enqueued += inc.close(
                    session, incident, at=now, actor="tower", reason="all monitors recovered"
                )
                summary.resolved += 1
                continue
            member_labels = [
                self.labels(self.monitors[row.name], row.alert_severity or incident.severity)
                for row in members
                if row.name in self.monitors
            ]
            why = "\n".join(f"{row.name}: {messages[row.name]}" for row in members)
            self._notify(session, incident, member_labels, why, silences, now, summary)

    def _clear(
        self, session: Session, row: MonitorState, incidents: Mapping[int, Incident], now: datetime
    ) -> None:
        if row.recovered_since is not None:
            session.execute(
                update(MonitorState)
                .where(
                    and_(
                        MonitorState.id == row.id,
                        MonitorState.recovered_since.is_not(None),
                    )
                )
                .values(failing_since=None, recovered_since=None)
            )
        incident = incidents.get(row.incident_id or -1)
        if incident is not None and row.alert_status != OK:
            inc.add_event(session, incident, "recovered", f"{row.name} recovered", at=now)
        row.alert_status = OK
        row.incident_id = None

    def _suppress(
        self,
        session: Session,
        row: MonitorState,
        blocker: str,
        rows: Mapping[str, MonitorState],
        incidents: Mapping[int, Incident],
        now: datetime,
    ) -> None:
        if row.alert_status == SUPPRESSED:
            return
        cause = rows.get(blocker)
        incident = incidents.get(cause.incident_id or -1) if cause is not None else None
        if incident is None:
            incident = incidents.get(row.incident_id or -1)
        if incident is not None:
            inc.add_event(
                session,
                incident,
                "suppressed",
                f"{row.name} is failing too, suppressed: it depends on {blocker}, which is down",
                at=now,
            )
        row.alert_status = SUPPRESSED
        row.incident_id = None

    def _notify(
        self,
        session: Session,
        incident: Incident,
        member_labels: list[dict[str, str]],
        why: str,
        silences: list[SilenceView],
        now: datetime,
        summary: PassSummary,
    ) -> None:
        if incident.status not in (inc.FIRING, inc.ACKNOWLEDGED):
            return
        labels = {
            **{str(k): str(v) for k, v in incident.labels.items()},
            "severity": incident.severity,
        }
        silenced = suppressing(member_labels, silences, self.alerts.maintenance, now)
        if silenced:
            if incident.suppressed_by != silenced:
                incident.suppressed_by = silenced
                inc.add_event(
                    session, incident, "silenced", f"notifications held: {silenced}", at=now
                )
            return
        if incident.suppressed_by:
            inc.add_event(
                session,
                incident,
                "unsilenced",
                f"{incident.suppressed_by} no longer applies",
                at=now,
            )
            incident.suppressed_by = ""
        if (
            SEVERITY_RANK.get(incident.severity, 0)
            > SEVERITY_RANK.get(incident.notified_severity, -1)
            or incident.notified_at is None
        ):
            channels = channels_for(self.alerts, severity=incident.severity, labels=labels)
            note = inc.notification(
                incident,
                "incident.firing",
                f"incident:{incident.id}:firing:{incident.severity}",
                why,
            )
            summary.enqueued += enqueue(session, note, channels)
            incident.notified_at = now
            incident.notified_severity = incident.severity
            incident.channels = list(dict.fromkeys([*incident.channels, *channels]))
            summary.notified += 1
            inc.add_event(
                session,
                incident,
                "notified",
                f"firing sent to {', '.join(channels) or 'no channel'}",
                at=now,
            )
            return
        if incident.status != inc.FIRING:
            return
        routes = matching_routes(self.alerts, severity=incident.severity, labels=labels)
        repeat = routes[0].repeat_interval if routes else DEFAULT_REPEAT
        last = incident.last_reminder_at or incident.notified_at
        if repeat > 0 and last is not None and (now - last).total_seconds() >= repeat:
            incident.reminders += 1
            incident.last_reminder_at = now
            note = inc.notification(
                incident,
                "incident.reminder",
                f"incident:{incident.id}:reminder:{incident.reminders}",
                f"still failing, unacknowledged (reminder {incident.reminders}):\n{why}",
            )
            summary.enqueued += enqueue(session, note, incident.channels)
            inc.add_event(
                session, incident, "reminder", f"reminder {incident.reminders} sent", at=now
            )
        escalation = escalation_for(self.alerts, severity=incident.severity, labels=labels)
        started = incident.firing_at or incident.started_at
        if (
            escalation is not None
            and incident.escalated_at is None
            and (now - started).total_seconds() >= escalation[1]
        ):
            channels, after = escalation
            incident.escalated_at = now
            note = inc.notification(
                incident,
                "incident.escalated",
                f"incident:{incident.id}:escalated",
                f"unacknowledged for {format_duration(after)}, escalated:\n{why}",
            )
            summary.enqueued += enqueue(session, note, channels)
            incident.channels = list(dict.fromkeys([*incident.channels, *channels]))
            inc.add_event(
                session, incident, "escalated", f"escalated to {', '.join(channels)}", at=now
            )
