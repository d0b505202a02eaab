"""DORA figures from the release history.

- deployment frequency: deploys that succeeded per day over the period;
- change failure rate: deploys that served traffic and were then rolled back,
  failed, undone by ``tower rollback`` or followed by an incident while they
  served (one starting within ``INCIDENT_WINDOW`` of the deploy's end), over all
  finished deploys that served traffic; a release refused before
  it took any traffic (gates, health, a hook before the switch) is counted apart,
  as ``refused``, and is not a failed change;
- time to restore: from the start of a failed change to the moment traffic was
  back on a good release (its rollback finished);
- lead time for changes: from the commit's time (git) to the deploy finishing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from controltower.deploy.views import ReleaseView

INCIDENT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Dora:
    days: float
    deploys: int
    succeeded: int
    failed_changes: int
    refused: int
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
    incidents: Sequence[datetime] = (),
) -> Dora:
    """DORA figures; ``incidents`` are the start times of the service's incidents."""
    since = now - timedelta(days=days)
    chosen = [r for r in releases if r.created_at >= since]
    finished = [
        r for r in chosen if r.kind == "deploy" and r.status not in ("running", "rolling_back")
    ]
    refused = [r for r in finished if r.served_traffic is False]
    deploys = [r for r in finished if r.served_traffic is not False]
    undone = {r.previous_id: r for r in chosen if r.kind == "rollback" and r.status == "succeeded"}
    serving_until = _serving_until(releases)
    failures: list[tuple[ReleaseView, datetime | None]] = []
    for release in deploys:
        if release.status in ("rolled_back", "failed"):
            failures.append((release, release.finished_at))
        elif release.id in undone:
            failures.append((release, undone[release.id].finished_at))
        elif release.status == "succeeded" and release.finished_at is not None:
            until = serving_until.get(release.id)
            end = release.finished_at + INCIDENT_WINDOW
            if until is not None:
                end = min(end, until)
            if any(release.finished_at <= at < end for at in incidents):
                failures.append((release, until))
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
        refused=len(refused),
        deploys_per_day=len(succeeded) / days if days else 0.0,
        change_failure_rate=len(failures) / len(deploys) if deploys else None,
        time_to_restore=statistics.median(restores) if restores else None,
        lead_time=statistics.median(leads) if leads else None,
    )


def _serving_until(releases: list[ReleaseView]) -> dict[str, datetime | None]:
    """When each release that succeeded stopped serving: the next success after it."""
    done = sorted(
        (r for r in releases if r.status == "succeeded" and r.finished_at is not None),
        key=lambda r: r.finished_at or r.created_at,
    )
    until: dict[str, datetime | None] = {}
    for index, release in enumerate(done):
        following = done[index + 1] if index + 1 < len(done) else None
        until[release.id] = following.finished_at if following else None
    return until
