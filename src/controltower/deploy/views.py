"""The read model of releases: what the API, the dashboard and the CLI show.

``view`` turns a stored release (and its step log) into a ``ReleaseView``;
``ReleaseView.to_dict`` is the JSON every surface serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from controltower.store import Store
from controltower.store.models.deploy import Release, ReleaseStep
from controltower.store.models.monitor import Incident

if TYPE_CHECKING:
    from controltower.deploy.history import Dora


@dataclass(frozen=True)
class StepLine:
    at: datetime
    state: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseView:
    """A release as commands show it."""

    id: str
    kind: str
    version: str
    image: str
    status: str
    state: str
    strategy: str
    driver: str
    actor: str
    git_commit: str
    previous_id: str
    reason: str
    created_at: datetime
    finished_at: datetime | None
    config_hash: str
    committed_at: datetime | None = None
    steps: list[StepLine] = field(default_factory=list)
    artifact: str = ""
    artifact_kind: str = ""
    artifact_digest: str = ""
    artifact_size: int | None = None
    served_traffic: bool | None = None

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()

    def to_dict(self, *, steps: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "version": self.version,
            "image": self.image,
            "status": self.status,
            "state": self.state,
            "strategy": self.strategy,
            "driver": self.driver,
            "actor": self.actor,
            "git_commit": self.git_commit,
            "previous_id": self.previous_id,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration": self.duration,
            "config_hash": self.config_hash,
            "committed_at": self.committed_at.isoformat() if self.committed_at else None,
            "artifact": {
                "kind": self.artifact_kind,
                "ref": self.artifact,
                "digest": self.artifact_digest,
                "size": self.artifact_size,
            }
            if self.artifact
            else None,
            "served_traffic": self.served_traffic,
        }
        if steps:
            data["steps"] = [
                {"at": s.at.isoformat(), "state": s.state, "message": s.message, "detail": s.detail}
                for s in self.steps
            ]
        return data


def view(release: Release, steps: list[ReleaseStep] | None = None) -> ReleaseView:
    return ReleaseView(
        id=release.id,
        kind=release.kind,
        version=release.version,
        image=release.image,
        status=release.status,
        state=release.state,
        strategy=release.strategy,
        driver=release.driver,
        actor=release.actor,
        git_commit=release.git_commit,
        previous_id=release.previous_id,
        reason=release.reason,
        created_at=release.created_at,
        finished_at=release.finished_at,
        config_hash=release.config_hash,
        committed_at=release.committed_at,
        artifact=release.artifact,
        artifact_kind=release.artifact_kind,
        artifact_digest=release.artifact_digest,
        artifact_size=release.artifact_size,
        served_traffic=_served(release),
        steps=[StepLine(s.at, s.state, s.message, s.detail) for s in steps or []],
    )


def _served(release: Release) -> bool | None:
    """Whether the release took traffic (None: recorded before tower kept track)."""
    value = (release.config or {}).get("served_traffic")
    return None if value is None else bool(value)


def releases_of(store: Store, service_id: int | None, *, limit: int = 10_000) -> list[ReleaseView]:
    """Releases of one service (or all), newest first."""
    query = select(Release)
    if service_id is not None:
        query = query.where(Release.service_id == service_id)
    with store.session() as session:
        rows = session.scalars(
            query.order_by(Release.created_at.desc(), Release.id.desc()).limit(limit)
        ).all()
        return [view(row) for row in rows]


def dora_figures(store: Store, service_id: int | None, *, now: datetime, days: float) -> Dora:
    """DORA figures from the stored releases and the incidents that followed them."""
    releases = releases_of(store, service_id)
    query = select(Incident.started_at).where(Incident.started_at >= now - timedelta(days=days + 1))
    if service_id is not None:
        query = query.where(Incident.service_id == service_id)
    with store.session() as session:
        incidents = list(session.scalars(query).all())
    from controltower.deploy.history import dora

    return dora(releases, now=now, days=days, incidents=incidents)
