"""DORA figures from the release history.

- deployment frequency: deploys that succeeded per day over the period;
- change failure rate: deploys that were rolled back, failed, or later undone by
  ``tower rollback``, over all finished deploys;
- time to restore: from the start of a failed change to the moment traffic was
  back on a good release (its rollback finished);
- lead time for changes: from the commit's time (git) to the deploy finishing.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from controltower.deploy.engine import ReleaseView


@dataclass(frozen=True)
class Dora:
    days: float
    deploys: int
    succeeded: int
    failed_changes: int
    deploys_per_day: float
    change_failure_rate: float | None
    time_to_restore: float | None
    lead_time: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dora(
    releases: list[ReleaseView],
    *,
    now: datetime,
    days: float = 30.0,
) -> Dora:
    since = now - timedelta(days=days)
    chosen = [r for r in releases if r.created_at >= since]
    deploys = [
        r for r in chosen if r.kind == "deploy" and r.status not in ("running", "rolling_back")
    ]
    undone = {r.previous_id: r for r in chosen if r.kind == "rollback" and r.status == "succeeded"}
    failures: list[tuple[ReleaseView, datetime | None]] = []
    for release in deploys:
        if release.status in ("rolled_back", "failed"):
            failures.append((release, release.finished_at))
        elif release.id in undone:
            failures.append((release, undone[release.id].finished_at))
    restores = [
        (restored - release.created_at).total_seconds()
        for release, restored in failures
        if restored is not None and release.status != "failed"
    ]
    succeeded = [r for r in deploys if r.status == "succeeded"]
    leads = [
        (r.finished_at - r.committed_at).total_seconds()
        for r in succeeded
        if r.finished_at is not None and r.committed_at is not None
    ]
    return Dora(
        days=days,
        deploys=len(deploys),
        succeeded=len(succeeded),
        failed_changes=len(failures),
        deploys_per_day=len(succeeded) / days if days else 0.0,
        change_failure_rate=len(failures) / len(deploys) if deploys else None,
        time_to_restore=statistics.median(restores) if restores else None,
        lead_time=statistics.median(leads) if leads else None,
    )
