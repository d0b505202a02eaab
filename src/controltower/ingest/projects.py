"""Projects from ``[[server.projects]]``: created in the store with a generated DSN key."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select

from controltower.spec.server import ProjectSpec
from controltower.store import Store
from controltower.store.models.ingest import Project


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    public_key: str
    rate_limit: int


def _info(project: Project) -> ProjectInfo:
    return ProjectInfo(project.id, project.name, project.public_key, project.rate_limit)


def ensure_projects(store: Store, specs: Iterable[ProjectSpec]) -> list[ProjectInfo]:
    """Create the projects that do not exist yet and update rate limits; return them all."""
    with store.session() as session:
        existing = {p.name: p for p in session.scalars(select(Project))}
        for spec in specs:
            project = existing.get(spec.name)
            if project is None:
                project = Project(
                    name=spec.name, public_key=secrets.token_hex(16), rate_limit=spec.rate_limit
                )
                session.add(project)
                existing[spec.name] = project
            else:
                project.rate_limit = spec.rate_limit
        session.flush()
        return sorted((_info(p) for p in existing.values()), key=lambda p: p.id)


def ensure_project(store: Store, name: str, *, rate_limit: int = 600) -> ProjectInfo:
    """Project ``name``, created with a new DSN key if it does not exist yet."""
    return next(
        p
        for p in ensure_projects(store, [ProjectSpec(name=name, rate_limit=rate_limit)])
        if p.name == name
    )


def load_projects(store: Store) -> list[ProjectInfo]:
    with store.session() as session:
        return [_info(p) for p in session.scalars(select(Project).order_by(Project.id))]


def find_project(store: Store, public_key: str) -> ProjectInfo | None:
    with store.session() as session:
        found = session.scalar(select(Project).where(Project.public_key == public_key))
        return _info(found) if found is not None else None


def dsn_for(project: ProjectInfo, base_url: str) -> str:
    """The DSN an SDK is configured with: ``http://<key>@host:port/<project id>``."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{project.public_key}@{parts.netloc}{path}/{project.id}"
