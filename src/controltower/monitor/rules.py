"""Alert rules: from a monitor's counters to ok, pending or firing. Pure functions.

A monitor starts failing when ``failure_threshold`` checks in a row fail
(``failing_since``) and recovers when ``success_threshold`` in a row pass
(``recovered_since``). Its alert is pending until it has failed ``for`` long,
then firing; after recovery a firing alert keeps firing for
``keep_firing_for`` (so a flapping target is one incident, not ten).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from controltower.spec.monitors import MonitorSpec

OK, PENDING, FIRING, SUPPRESSED = "ok", "pending", "firing", "suppressed"
SEVERITY_RANK = {"": 0, "info": 0, "warning": 1, "critical": 2}


class Counters(Protocol):
    failing_since: datetime | None
    recovered_since: datetime | None


def alert_status(monitor: MonitorSpec, state: Counters, now: datetime) -> str:
    """``ok``, ``pending`` or ``firing`` for ``monitor`` with these counters at ``now``."""
    failing_since = state.failing_since
    if failing_since is None:
        return OK
    recovered = state.recovered_since
    if recovered is not None:
        was_firing = (recovered - failing_since).total_seconds() >= monitor.for_
        if not was_firing:
            return OK
        if (now - recovered).total_seconds() >= monitor.keep_firing_for:
            return OK
        return FIRING
    if (now - failing_since).total_seconds() >= monitor.for_:
        return FIRING
    return PENDING


def unseen_outage(
    monitor: MonitorSpec, state: Counters, *, judged: str, incident_id: int | None
) -> bool:
    """An outage that started and ended between two alerting passes.

    The counters keep an outage (``failing_since`` .. ``recovered_since``) until a
    pass clears it, so it is never lost: when the last pass judged the monitor
    ``ok`` (``judged``, no incident) and the outage lasted ``for`` long, it would
    have fired had a pass seen it (a pass that was late: the alerting leader
    died and another took over).
    """
    failing, recovered = state.failing_since, state.recovered_since
    if failing is None or recovered is None or judged != OK or incident_id is not None:
        return False
    return (recovered - failing).total_seconds() >= monitor.for_


def worse(a: str, b: str) -> str:
    """The more severe of two severities."""
    return a if SEVERITY_RANK.get(a, 0) >= SEVERITY_RANK.get(b, 0) else b


def failing_dependency(
    monitor: MonitorSpec, down: set[str], depends: dict[str, list[str]]
) -> str | None:
    """The first monitor ``monitor`` depends on (directly or not) that is down, if any."""
    seen: set[str] = set()
    queue = list(monitor.depends_on)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name in down:
            return name
        queue.extend(depends.get(name, []))
    return None
