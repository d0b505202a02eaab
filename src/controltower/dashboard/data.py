"""The dashboard's read model: queries over every area's tables, shaped for pages."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controltower.dashboard.svg import DayBar, Series, bar_chart, line_chart, sparkline, uptime_bars
from controltower.ingest.vitals import summarize
from controltower.store import Store
from controltower.store.models.checks import CheckFindingRow, CheckRunRow, RunKind
from controltower.store.models.core import Service
from controltower.store.models.deploy import Release, ReleaseStep
from controltower.store.models.ingest import CspReport, ErrorEvent, ErrorIssue, ErrorIssueHour
from controltower.store.models.monitor import Incident, MonitorResult, MonitorRollup, MonitorState
from controltower.units import format_duration

OPEN = ("pending", "firing", "acknowledged")


@dataclass
class ReleaseView:
    id: str
    service: str
    version: str
    strategy: str
    status: str
    actor: str
    when: datetime
    reason: str = ""


@dataclass
class IncidentRef:
    id: int
    title: str
    status: str


@dataclass
class ServiceSummary:
    id: int
    name: str
    environment: str
    status: str = "unknown"
    uptime_24h: float | None = None
    uptime_7d: float | None = None
    uptime_30d: float | None = None
    spark: str = ""
    incident: IncidentRef | None = None
    release: ReleaseView | None = None
    readiness: float | None = None
    monitors: list[MonitorState] = field(default_factory=list)


def _status(levels: list[str]) -> str:
    if not levels:
        return "unknown"
    if any(level in ("down", "critical", "fail") for level in levels):
        return "down"
    if any(level in ("warning", "degraded", "warn") for level in levels):
        return "degraded"
    if all(level in ("up", "ok", "pass") for level in levels):
        return "up"
    return "unknown"


def _uptime(session: Session, monitor_ids: list[int], since: datetime) -> float | None:
    """Share of successful checks since ``since``: hourly rollups, else raw results."""
    if not monitor_ids:
        return None
    checks, failures = session.execute(
        select(
            func.coalesce(func.sum(MonitorRollup.checks), 0),
            func.coalesce(func.sum(MonitorRollup.failures), 0),
        ).where(
            MonitorRollup.monitor_id.in_(monitor_ids),
            MonitorRollup.bucket == "hour",
            MonitorRollup.start >= since,
        )
    ).one()
    if checks:
        return 1.0 - failures / checks
    total = (
        session.scalar(
            select(func.count()).where(
                MonitorResult.monitor_id.in_(monitor_ids), MonitorResult.at >= since
            )
        )
        or 0
    )
    if not total:
        return None
    ok = (
        session.scalar(
            select(func.count()).where(
                MonitorResult.monitor_id.in_(monitor_ids),
                MonitorResult.at >= since,
                MonitorResult.ok.is_(True),
            )
        )
        or 0
    )
    return ok / total


def _latency_series(
    session: Session, monitor_ids: list[int], since: datetime, now: datetime
) -> tuple[list[float | None], list[str]]:
    hours = [
        since + timedelta(hours=i) for i in range(int((now - since).total_seconds() // 3600) + 1)
    ]
    buckets: dict[datetime, list[float]] = defaultdict(list)
    if monitor_ids:
        rows = session.execute(
            select(MonitorResult.at, MonitorResult.latency_ms).where(
                MonitorResult.monitor_id.in_(monitor_ids), MonitorResult.at >= since
            )
        )
        for at, latency in rows:
            buckets[at.replace(minute=0, second=0, microsecond=0)].append(latency / 1000.0)
    values: list[float | None] = []
    for hour in hours:
        key = hour.replace(minute=0, second=0, microsecond=0)
        sample = buckets.get(key)
        values.append(sum(sample) / len(sample) if sample else None)
    return values, [h.strftime("%H:00") for h in hours]


def _release_view(release: Release, service: str) -> ReleaseView:
    return ReleaseView(
        release.id,
        service,
        release.version or release.image,
        release.strategy,
        release.status,
        release.actor,
        release.created_at,
        release.reason,
    )


def _readiness(session: Session, service_id: int) -> float | None:
    score = session.scalar(
        select(CheckRunRow.overall)
        .where(CheckRunRow.service_id == service_id, CheckRunRow.kind == RunKind.READINESS.value)
        .order_by(CheckRunRow.started_at.desc())
        .limit(1)
    )
    return None if score is None else float(score)


def _summaries(session: Session, now: datetime) -> list[ServiceSummary]:
    out = []
    for service in session.scalars(select(Service).order_by(Service.name, Service.environment)):
        summary = ServiceSummary(service.id, service.name, service.environment)
        monitors = list(
            session.scalars(
                select(MonitorState)
                .where(MonitorState.service_id == service.id)
                .order_by(MonitorState.name)
            )
        )
        summary.monitors = monitors
        ids = [m.id for m in monitors]
        summary.status = _status([m.level for m in monitors])
        summary.uptime_24h = _uptime(session, ids, now - timedelta(days=1))
        summary.uptime_7d = _uptime(session, ids, now - timedelta(days=7))
        summary.uptime_30d = _uptime(session, ids, now - timedelta(days=30))
        values, _ = _latency_series(session, ids, now - timedelta(hours=23), now)
        summary.spark = sparkline(values, label=f"{service.name} response time, 24h")
        incident = session.scalars(
            select(Incident)
            .where(Incident.service_id == service.id, Incident.status.in_(OPEN))
            .order_by(Incident.id.desc())
            .limit(1)
        ).first()
        if incident is not None:
            summary.incident = IncidentRef(incident.id, incident.title, incident.status)
        release = session.scalars(
            select(Release)
            .where(Release.service_id == service.id)
            .order_by(Release.created_at.desc())
            .limit(1)
        ).first()
        if release is not None:
            summary.release = _release_view(release, service.name)
        summary.readiness = _readiness(session, service.id)
        out.append(summary)
    return out


def overview(store: Store, *, now: datetime) -> dict[str, Any]:
    with store.session() as session:
        services = _summaries(session, now)
        return {
            "services": services,
            "open_incidents": session.scalar(select(func.count()).where(Incident.status.in_(OPEN)))
            or 0,
            "unresolved_errors": session.scalar(
                select(func.count()).where(ErrorIssue.status.in_(("unresolved", "regressed")))
            )
            or 0,
            "deploys_week": session.scalar(
                select(func.count()).where(Release.created_at >= now - timedelta(days=7))
            )
            or 0,
        }


def service_summary(store: Store, name: str, *, now: datetime) -> ServiceSummary | None:
    with store.session() as session:
        for summary in _summaries(session, now):
            if summary.name == name:
                return summary
    return None


def _day_bars(
    session: Session, monitor_ids: list[int], now: datetime, days: int = 90
) -> list[DayBar]:
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    if monitor_ids:
        for bucket in ("day", "hour"):
            rows = session.execute(
                select(MonitorRollup.start, MonitorRollup.checks, MonitorRollup.failures).where(
                    MonitorRollup.monitor_id.in_(monitor_ids),
                    MonitorRollup.bucket == bucket,
                    MonitorRollup.start >= start,
                )
            )
            found = False
            for at, checks, failures in rows:
                found = True
                day = at.strftime("%Y-%m-%d")
                totals[day][0] += checks
                totals[day][1] += failures
            if found:
                break
        if not totals:
            for at, ok in session.execute(
                select(MonitorResult.at, MonitorResult.ok).where(
                    MonitorResult.monitor_id.in_(monitor_ids), MonitorResult.at >= start
                )
            ):
                day = at.strftime("%Y-%m-%d")
                totals[day][0] += 1
                totals[day][1] += 0 if ok else 1
    bars = []
    for offset in range(days):
        day = (start + timedelta(days=offset)).strftime("%Y-%m-%d")
        checks, failures = totals.get(day, [0, 0])
        bars.append(DayBar(day, None if not checks else 1 - failures / checks))
    return bars


def service_page(store: Store, name: str, *, now: datetime) -> dict[str, Any] | None:
    with store.session() as session:
        found = [s for s in _summaries(session, now) if s.name == name]
        if not found:
            return None
        summary = found[0]
        ids = [m.id for m in summary.monitors]
        values, labels = _latency_series(session, ids, now - timedelta(hours=23), now)
        chart = line_chart(
            [Series("mean response time", values)], labels, label=f"{name} response time"
        )
        monitors = [
            {
                "name": m.name,
                "type": m.type,
                "status": _status([m.level]),
                "last_check": m.last_check_at,
                "message": m.last_message,
            }
            for m in summary.monitors
        ]
        return {
            "service": summary,
            "latency_chart": chart,
            "uptime": uptime_bars(_day_bars(session, ids, now)),
            "monitors": monitors,
        }


def incidents(store: Store) -> list[dict[str, Any]]:
    from controltower.monitor.incidents import list_incidents

    names = _service_names(store)
    views = list_incidents(store, limit=100)
    views.sort(key=lambda v: (v.status == "resolved", -v.id))
    out = []
    for view in views:
        item = dict(view.__dict__)
        item["started"] = view.started_at
        item["service"] = names.get(
            view.labels.get("service_id", -1), view.labels.get("service", "")
        )
        out.append(item)
    return out


def _service_names(store: Store) -> dict[int, str]:
    with store.session() as session:
        return {row[0]: row[1] for row in session.execute(select(Service.id, Service.name))}


def act_on_incident(store: Store, incident_id: int, action: str, *, actor: str) -> None:
    from controltower.exceptions import MonitorError
    from controltower.monitor.incidents import acknowledge, resolve

    try:
        if action == "ack":
            acknowledge(store, incident_id, actor)
        else:
            resolve(store, incident_id, actor)
    except MonitorError:
        pass  # already acknowledged or resolved by someone else: the page shows the state


def _weeks(now: datetime, count: int = 8) -> list[datetime]:
    monday = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return [monday - timedelta(weeks=count - 1 - i) for i in range(count)]


def deploys(store: Store, *, now: datetime) -> dict[str, Any]:
    with store.session() as session:
        names = {row[0]: row[1] for row in session.execute(select(Service.id, Service.name))}
        rows = list(session.scalars(select(Release).order_by(Release.created_at.desc()).limit(200)))
    releases = [_release_view(r, names.get(r.service_id, "")) for r in rows]
    weeks = _weeks(now)
    per_week, failed_week = [0] * len(weeks), [0] * len(weeks)
    for release in rows:
        if release.kind not in ("deploy", ""):
            continue
        for index, start in enumerate(weeks):
            if start <= release.created_at < start + timedelta(weeks=1):
                per_week[index] += 1
                if release.status in ("failed", "rolled_back"):
                    failed_week[index] += 1
    dora = _dora(rows, now)
    labels = [w.strftime("%m-%d") for w in weeks]
    return {
        "releases": releases,
        "dora": dora,
        "weekly_chart": bar_chart(per_week, labels, label="deploys per week"),
        "failed_chart": bar_chart(
            failed_week, labels, css="series-c", label="failed deploys per week"
        ),
    }


def _dora(rows: list[Release], now: datetime) -> dict[str, str]:
    """The DORA figures of the last 30 days, as ``tower releases`` and the API compute them."""
    from controltower.deploy.history import dora
    from controltower.deploy.views import view

    figures = dora([view(row) for row in rows], now=now, days=30.0)
    rate = figures.change_failure_rate
    return {
        "frequency": f"{figures.deploys_per_day * 7:.1f}",
        "failure_rate": f"{rate * 100:.0f}%" if rate is not None else "-",
        "restore": format_duration(figures.time_to_restore)
        if figures.time_to_restore is not None
        else "-",
        "lead_time": format_duration(figures.lead_time) if figures.lead_time is not None else "-",
    }


def release(store: Store, release_id: str) -> dict[str, Any] | None:
    with store.session() as session:
        row = session.get(Release, release_id)
        if row is None:
            return None
        name = session.scalar(select(Service.name).where(Service.id == row.service_id)) or ""
        steps = list(
            session.scalars(
                select(ReleaseStep)
                .where(ReleaseStep.release_id == release_id)
                .order_by(ReleaseStep.id)
            )
        )
        return {
            "release": _release_view(row, name),
            "steps": [{"at": s.at, "state": s.state, "message": s.message} for s in steps],
        }


def _hourly(session: Session, issue_ids: list[int], now: datetime) -> dict[int, list[float | None]]:
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    series: dict[int, list[float | None]] = {i: [0.0] * 24 for i in issue_ids}
    if issue_ids:
        for issue_id, hour, count in session.execute(
            select(ErrorIssueHour.issue_id, ErrorIssueHour.hour, ErrorIssueHour.count).where(
                ErrorIssueHour.issue_id.in_(issue_ids), ErrorIssueHour.hour >= start
            )
        ):
            index = int((hour - start).total_seconds() // 3600)
            if 0 <= index < 24:
                series[issue_id][index] = float(count)
    return series


def errors(store: Store, *, now: datetime) -> dict[str, Any]:
    with store.session() as session:
        issues = list(
            session.scalars(select(ErrorIssue).order_by(ErrorIssue.last_seen.desc()).limit(200))
        )
        hourly = _hourly(session, [i.id for i in issues], now)
        csp = list(session.scalars(select(CspReport).order_by(CspReport.count.desc()).limit(50)))
    return {
        "issues": [
            {
                "id": i.id,
                "title": i.title,
                "culprit": i.culprit,
                "level": i.level,
                "status": i.status,
                "count": i.count,
                "last_seen": i.last_seen,
                "spark": sparkline(hourly[i.id], label="events per hour"),
            }
            for i in issues
        ],
        "csp": csp,
        "vitals": [
            g.as_dict()
            for g in summarize(store, since=now - timedelta(hours=24), by=("page", "release"))[:50]
        ],
    }


def _frames(exception: dict[str, Any]) -> list[dict[str, Any]]:
    """Stored frames (oldest first, as SDKs send them), most recent call first."""
    frames = exception.get("frames")
    if not isinstance(frames, list):
        stack = exception.get("stacktrace")
        frames = stack.get("frames") if isinstance(stack, dict) else None
    frames = list(frames or [])[::-1]
    return [
        {
            "filename": f.get("filename") or f.get("abs_path") or f.get("module") or "?",
            "lineno": f.get("lineno", "?"),
            "function": f.get("function", "?"),
            "pre": f.get("pre_context") or [],
            "line": f.get("context_line") or "",
            "post": f.get("post_context") or [],
        }
        for f in frames
        if isinstance(f, dict)
    ]


def error(store: Store, issue_id: int, *, now: datetime) -> dict[str, Any] | None:
    with store.session() as session:
        issue = session.get(ErrorIssue, issue_id)
        if issue is None:
            return None
        event = session.scalars(
            select(ErrorEvent)
            .where(ErrorEvent.issue_id == issue_id)
            .order_by(ErrorEvent.received_at.desc())
            .limit(1)
        ).first()
        hourly = _hourly(session, [issue_id], now)[issue_id]
    view: dict[str, Any] | None = None
    if event is not None:
        data = event.data or {}
        stored = data.get("exception") or []
        if isinstance(stored, dict):
            stored = stored.get("values") or []
        # The chain is stored innermost last; the page shows the exception raised first.
        exceptions = list(stored)[::-1] if isinstance(stored, list) else []
        context = {
            k: data[k] for k in ("contexts", "extra", "tags", "request", "user") if data.get(k)
        }
        view = {
            "environment": event.environment,
            "release": event.release,
            "code": event.code,
            "message": event.message,
            "exceptions": [
                {"type": e.get("type", ""), "value": e.get("value", ""), "frames": _frames(e)}
                for e in exceptions
                if isinstance(e, dict)
            ],
            "context": json.dumps(context, indent=2, default=str) if context else "",
        }
    labels = [f"{h:02d}" for h in range(24)]
    chart = line_chart([Series("events", hourly)], labels, unit="", label="events per hour")
    return {"issue": issue, "event": view, "chart": chart}


def resolve_error(store: Store, issue_id: int, *, now: datetime) -> None:
    with store.session() as session:
        issue = session.get(ErrorIssue, issue_id)
        if issue is not None and issue.status != "resolved":
            issue.status = "resolved"
            issue.resolved_at = now


def _gate_passed(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value.get("passed", value.get("pass", False)))
    return bool(value)


def readiness(store: Store) -> dict[str, Any]:
    with store.session() as session:
        rows = list(
            session.scalars(
                select(CheckRunRow)
                .where(CheckRunRow.kind == RunKind.READINESS.value)
                .order_by(CheckRunRow.started_at.desc())
                .limit(100)
            )
        )
        findings: list[CheckFindingRow] = []
        if rows:
            findings = list(
                session.scalars(
                    select(CheckFindingRow)
                    .where(CheckFindingRow.run_id == rows[0].id)
                    .order_by(CheckFindingRow.gate, CheckFindingRow.check_id)
                )
            )
    runs: list[dict[str, Any]] = [
        {
            "when": r.started_at,
            "service": r.service,
            "environment": r.environment,
            "score": float(r.overall or 0.0),
        }
        for r in rows
    ]
    chronological = list(reversed(rows))
    chart = line_chart(
        [Series("readiness %", [float(r.overall or 0.0) for r in chronological])],
        [r.started_at.strftime("%m-%d %H:%M") for r in chronological],
        unit="%",
        label="readiness over time",
    )
    latest = None
    if rows:
        top = rows[0]
        latest = {
            "service": top.service,
            "when": top.started_at,
            "score": float(top.overall or 0.0),
            "categories": {k: float(v) for k, v in (top.categories or {}).items() if v is not None},
            "gates": {k: _gate_passed(v) for k, v in sorted((top.gates or {}).items())},
            "findings": [
                {"id": f.check_id, "status": f.status, "message": f.message}
                for f in findings
                if f.status not in ("pass", "skip", "skipped")
            ],
        }
    return {"runs": runs, "latest": latest, "chart": chart}


def status_page(store: Store, *, now: datetime) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    with store.session() as session:
        for summary in _summaries(session, now):
            for monitor in summary.monitors:
                bars = _day_bars(session, [monitor.id], now)
                measured = [b.uptime for b in bars if b.uptime is not None]
                components.append(
                    {
                        "name": f"{summary.name} · {monitor.name}",
                        "status": _status([monitor.level]),
                        "uptime_90d": sum(measured) / len(measured) if measured else None,
                        "bars": uptime_bars(bars),
                    }
                )
        open_incidents = list(
            session.scalars(
                select(Incident).where(Incident.status.in_(OPEN)).order_by(Incident.id.desc())
            )
        )
    overall = (
        _status([str(c["status"]) for c in components if c["status"] != "unknown"])
        if components
        else "unknown"
    )
    return {
        "components": components,
        "incidents": [
            {"title": i.title, "status": i.status, "started": i.started_at} for i in open_incidents
        ],
        "overall": overall,
    }
