"""Build the server from a spec: used by ``tower serve`` and by uvicorn workers.

With ``--workers N`` uvicorn imports ``controltower.server.factory:from_environment``
in each worker process; the spec path, environment and store URL travel in
``TOWER_SERVE_SPEC``, ``TOWER_ENV`` and ``TOWER_DATABASE_URL``; the parts a worker
leaves out (``monitors``, ``notify``, ``dashboard``) in ``TOWER_SERVE_SKIP``.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from controltower.clock import system_clock
from controltower.ingest.projects import ProjectInfo, ensure_projects
from controltower.server.app import create_app
from controltower.server.context import ServerContext
from controltower.spec import Spec, load_spec
from controltower.store import Store
from controltower.typing import Clock

ENV_SPEC = "TOWER_SERVE_SPEC"
ENV_SKIP = "TOWER_SERVE_SKIP"


def open_store(spec: Spec, url: str | None = None) -> Store:
    """The store named by ``url``, ``[store] url``, $TOWER_DATABASE_URL, else .tower/ by the spec."""
    chosen = url or (spec.store.url.get_secret_value() if spec.store.url else None)
    return Store.open(chosen, root=Path(spec.source).resolve().parent)


def prepare(
    spec: Spec,
    store: Store,
    *,
    clock: Clock = system_clock,
    monitors: bool = True,
    notify: bool = True,
    backups: bool = True,
) -> tuple[ServerContext, list[ProjectInfo]]:
    """Create the spec's projects and build the server's context."""
    projects = ensure_projects(store, spec.server.projects)
    context = ServerContext.build(
        store, spec, clock=clock, monitors=monitors, notify=notify, backups=backups
    )
    return context, projects


def from_environment() -> Starlette:
    spec = load_spec(os.environ.get(ENV_SPEC) or None, env=os.environ.get("TOWER_ENV") or None)
    skip = set(os.environ.get(ENV_SKIP, "").split(","))
    context, _ = prepare(
        spec,
        open_store(spec),
        monitors="monitors" not in skip,
        notify="notify" not in skip,
        backups="backups" not in skip,
    )
    context.dashboard = "dashboard" not in skip
    return create_app(context)
