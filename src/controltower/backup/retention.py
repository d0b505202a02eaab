"""Keep the last N backups and N hourly, daily and weekly ones; let the rest go.

``keep`` is pure: it takes (name, time) pairs and returns the names to keep.
The newest ``last`` are kept as they are. In each granularity the newest backup of a bucket (an hour, a day, an ISO
week) stands for it, newest buckets first, until N buckets are kept. The
newest backup is always kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update

from controltower.backup import records
from controltower.backup.destinations import Destination, open_destination
from controltower.backup.run import spec_root
from controltower.clock import system_clock
from controltower.spec import Spec
from controltower.spec.backup import RetentionSpec
from controltower.store import Store, record_audit
from controltower.store.models.backup import Backup
from controltower.typing import Clock

_BUCKETS = (("hourly", "%Y-%m-%dT%H"), ("daily", "%Y-%m-%d"), ("weekly", "%G-W%V"))


def keep(items: Iterable[tuple[str, datetime]], retention: RetentionSpec) -> dict[str, list[str]]:
    """Which names to keep, each with the reasons (``newest``, ``last``, ``hourly``, ...)."""
    ordered = sorted(items, key=lambda item: item[1], reverse=True)
    reasons: dict[str, list[str]] = {}
    if ordered:
        reasons[ordered[0][0]] = ["newest"]
    for name, _ in ordered[: retention.last]:
        reasons.setdefault(name, []).append("last")
    for label, pattern in _BUCKETS:
        limit = getattr(retention, label)
        seen: set[str] = set()
        for name, at in ordered:
            if len(seen) >= limit:
                break
            bucket = at.strftime(pattern)
            if bucket in seen:
                continue
            seen.add(bucket)
            reasons.setdefault(name, []).append(label)
    return reasons


@dataclass
class PruneResult:
    kept: dict[str, list[str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prune(
    spec: Spec,
    store: Store,
    *,
    dry_run: bool = False,
    clock: Clock = system_clock,
    destination: Destination | None = None,
    environ: Mapping[str, str] | None = None,
    actor: str = "tower",
) -> PruneResult:
    """Delete database backups that retention does not keep, and failed leftovers."""
    dest = destination or open_destination(
        spec.backup.destination, root=spec_root(spec), environ=environ
    )
    try:
        good = records.rows(store, spec, kind="database", status="ok")
        kept = keep(((row.name, row.started_at) for row in good), spec.backup.retention)
        doomed = [row for row in good if row.name not in kept]
        stale = [
            row
            for row in records.rows(store, spec, kind="database", status="failed")
            + records.rows(store, spec, kind="database", status="running")
            if (clock.now() - row.started_at).total_seconds() > spec.backup.timeout
            or row.status == "failed"
        ]
        result = PruneResult(kept=kept, deleted=[row.name for row in doomed], dry_run=dry_run)
        if dry_run:
            return result
        service = spec.service.name
        for row in [*doomed, *stale]:
            dest.delete(f"{service}/{row.name}.dump")
            dest.delete(f"{service}/{row.name}.json")
        with store.session() as session:
            names = [row.name for row in doomed]
            if names:
                session.execute(
                    update(Backup).where(Backup.name.in_(names)).values(status="pruned")
                )
            stale_names = [row.name for row in stale if row.status == "running"]
            if stale_names:
                session.execute(
                    update(Backup)
                    .where(Backup.name.in_(stale_names))
                    .values(status="failed", error="never finished (process died?)")
                )
            if names:
                record_audit(
                    session,
                    actor=actor,
                    action="backup.pruned",
                    service=records.service_of(session, spec),
                    subject=f"{len(names)} backups",
                    detail={"names": names},
                )
        return result
    finally:
        if destination is None:
            dest.close()
