"""Where every monitor stands: its last check, its alert, uptime per window and SLO budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from controltower.clock import system_clock
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import Uptime, uptimes
from controltower.spec import Spec
from controltower.store import Store
from controltower.store.models.monitor import MonitorState
from controltower.typing import Clock


@dataclass(frozen=True)
class MonitorStatus:
    """One monitor as ``tower monitor status`` and the API show it."""

    name: str
    type: str
    level: str
    alert: str
    last_check_at: datetime | None
    message: str
    held_by: str
    incident: int | None
    uptime: Uptime

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["uptime"] = self.uptime.windows
        data["slo"] = self.uptime.slo
        data["budget_remaining"] = self.uptime.budget_remaining
        data["checks_30d"] = self.uptime.checks_30d
        data["failures_30d"] = self.uptime.failures_30d
        data["avg_latency_ms_24h"] = self.uptime.avg_latency_ms_24h
        return data


def monitor_status(store: Store, spec: Spec, *, clock: Clock = system_clock) -> list[MonitorStatus]:
    """Every enabled monitor of ``spec``, in spec order."""
    now = clock.now()
    _service, ids = sync_monitors(store, spec)
    slos = {monitor.name: monitor.slo for monitor in spec.monitors}
    with store.session() as session:
        rows = {
            row.id: row
            for row in session.scalars(
                select(MonitorState).where(MonitorState.id.in_(list(ids.values())))
            )
        }
        windows = uptimes(session, {mid: (name, slos.get(name)) for name, mid in ids.items()}, now)
        found = []
        for monitor in spec.monitors:
            if monitor.name not in ids:
                continue
            row = rows[ids[monitor.name]]
            leased = row.lease_expires_at is not None and row.lease_expires_at > now
            found.append(
                MonitorStatus(
                    name=monitor.name,
                    type=monitor.type.value,
                    level=row.level,
                    alert=row.alert_status,
                    last_check_at=row.last_check_at,
                    message=row.last_message,
                    held_by=row.lease_owner if leased else "",
                    incident=row.incident_id,
                    uptime=windows[row.id],
                )
            )
    return found
