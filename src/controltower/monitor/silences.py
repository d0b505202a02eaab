"""Silences (matchers until an expiry) and maintenance windows (recurring schedules).

Both answer one question: should a notification about alerts with these labels
go out now? A matcher set matches labels when every ``key = value`` is equal;
``value`` may end in ``*`` to match a prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from controltower.clock import system_clock
from controltower.exceptions import MonitorError, UsageError
from controltower.spec.alerts import MaintenanceSpec
from controltower.store import Store, record_audit
from controltower.store.models.monitor import Silence
from controltower.typing import Clock

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def matches(matchers: Mapping[str, object], labels: Mapping[str, str]) -> bool:
    for key, want in matchers.items():
        have = labels.get(key)
        if have is None:
            return False
        text = str(want)
        if text.endswith("*"):
            if not have.startswith(text[:-1]):
                return False
        elif have != text:
            return False
    return True


@dataclass(frozen=True)
class SilenceView:
    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    active: bool

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.matchers.items()) or "everything"
        return f"silence #{self.id} ({shown})"


def _view(row: Silence, now: datetime) -> SilenceView:
    return SilenceView(
        row.id,
        {str(k): str(v) for k, v in row.matchers.items()},
        row.starts_at,
        row.ends_at,
        row.created_by,
        row.comment,
        row.starts_at <= now < row.ends_at,
    )


def parse_matchers(items: Iterable[str]) -> dict[str, str]:
    """``["monitor=api", "severity=critical"]`` -> a matcher dict; bad items raise UsageError."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"matcher {item!r} is not key=value", hint="e.g. --match monitor=api")
        found[key.strip()] = value.strip()
    return found


def add_silence(
    store: Store,
    service: int,
    matchers: Mapping[str, str],
    *,
    duration: float,
    actor: str,
    comment: str = "",
    starts_at: datetime | None = None,
    clock: Clock = system_clock,
) -> SilenceView:
    """Silence alerts whose labels match ``matchers`` for ``duration`` seconds."""
    if duration <= 0:
        raise UsageError("a silence needs a positive duration", hint="e.g. --duration 2h")
    now = clock.now()
    start = starts_at or now
    with store.session() as session:
        row = Silence(
            service_id=service,
            matchers=dict(matchers),
            starts_at=start,
            ends_at=start + timedelta(seconds=duration),
            created_at=now,
            created_by=actor,
            comment=comment,
        )
        session.add(row)
        session.flush()
        record_audit(
            session,
            actor=actor,
            action="silence.add",
            service=service,
            subject=f"silence:{row.id}",
            detail={"matchers": dict(matchers), "duration": duration},
        )
        return _view(row, now)


def list_silences(
    store: Store, service: int, *, include_expired: bool = False, clock: Clock = system_clock
) -> list[SilenceView]:
    now = clock.now()
    with store.session() as session:
        query = select(Silence).where(Silence.service_id == service)
        if not include_expired:
            query = query.where(Silence.ends_at > now)
        return [_view(row, now) for row in session.scalars(query.order_by(Silence.id))]


def expire_silence(
    store: Store, silence_id: int, *, actor: str, clock: Clock = system_clock
) -> SilenceView:
    """End a silence now."""
    now = clock.now()
    with store.session() as session:
        row = session.get(Silence, silence_id)
        if row is None:
            raise MonitorError(
                f"there is no silence #{silence_id}", hint="see `tower silence list`"
            )
        if row.ends_at > now:
            row.ends_at = max(now, row.starts_at)
        record_audit(
            session,
            actor=actor,
            action="silence.expire",
            service=row.service_id,
            subject=f"silence:{row.id}",
        )
        return _view(row, now)


def active_silences(session: Session, service: int, now: datetime) -> list[SilenceView]:
    query = select(Silence).where(
        Silence.service_id == service, Silence.starts_at <= now, Silence.ends_at > now
    )
    return [_view(row, now) for row in session.scalars(query)]


def _zone(window: MaintenanceSpec) -> ZoneInfo:
    try:
        return ZoneInfo(window.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MonitorError(
            f"maintenance window {window.name or '?'}: unknown timezone {window.timezone!r}",
            hint='use an IANA name such as "Europe/Paris" or "UTC"',
        ) from None


def _start_time(window: MaintenanceSpec) -> tuple[int, int]:
    hour, _, minute = (window.start or "00:00").partition(":")
    try:
        return int(hour), int(minute or 0)
    except ValueError:
        raise MonitorError(
            f"maintenance window {window.name or '?'}: start {window.start!r} is not HH:MM"
        ) from None


def window_active(window: MaintenanceSpec, now: datetime) -> bool:
    """Whether ``now`` falls in one occurrence of the recurring window."""
    local = now.astimezone(_zone(window))
    length = timedelta(seconds=window.duration)
    if window.cron:
        if not croniter.is_valid(window.cron):
            raise MonitorError(
                f"maintenance window {window.name or '?'}: {window.cron!r} is not a cron schedule"
            )
        start = croniter(window.cron, local + timedelta(seconds=1)).get_prev(datetime)
        return bool(start <= local < start + length)
    days = {day.lower()[:3] for day in window.weekdays} or set(WEEKDAYS)
    hour, minute = _start_time(window)
    back = int(length.total_seconds() // 86400) + 1
    for offset in range(back + 1):
        day = local - timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in days:
            continue
        start = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if start <= local < start + length:
            return True
    return False


def suppressing(
    labels: Iterable[Mapping[str, str]],
    silences: Iterable[SilenceView],
    windows: Iterable[MaintenanceSpec],
    now: datetime,
) -> str:
    """What silences alerts with each of these label sets ('' if nothing): all must match."""
    sets = list(labels)
    if not sets:
        return ""
    for silence in silences:
        if all(matches(silence.matchers, item) for item in sets):
            return silence.describe()
    for window in windows:
        if window_active(window, now) and all(matches(window.match, item) for item in sets):
            return f"maintenance window {window.name or window.cron or 'unnamed'}"
    return ""
