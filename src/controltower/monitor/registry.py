"""The monitors of a spec, as rows in the store."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from controltower.clock import utcnow
from controltower.spec import Spec
from controltower.store import Store, service_id
from controltower.store.models.monitor import MonitorState


def service_of(store: Store, spec: Spec) -> int:
    with store.session() as session:
        return service_id(session, spec.service.name, spec.environment or "default")


def sync_monitors(store: Store, spec: Spec) -> tuple[int, dict[str, int]]:
    """Create the rows of monitors new to the store; return the service id and name -> id."""
    service = service_of(store, spec)
    wanted = {monitor.name: monitor for monitor in spec.monitors if monitor.enabled}
    for _attempt in range(3):
        try:
            with store.session() as session:
                rows = {
                    row.name: row
                    for row in session.scalars(
                        select(MonitorState).where(MonitorState.service_id == service)
                    )
                }
                for name, monitor in wanted.items():
                    row = rows.get(name)
                    if row is None:
                        row = MonitorState(
                            service_id=service,
                            name=name,
                            type=monitor.type.value,
                            created_at=utcnow(),
                            level="unknown",
                            consecutive_failures=0,
                            consecutive_successes=0,
                            last_message="",
                            last_ping_status="",
                            lease_owner="",
                            alert_status="ok",
                            alert_severity="",
                        )
                        session.add(row)
                        rows[name] = row
                    elif row.type != monitor.type.value:
                        row.type = monitor.type.value
                session.flush()
                return service, {name: rows[name].id for name in wanted}
        except IntegrityError:
            continue
    raise RuntimeError("could not register monitors after 3 attempts")
