"""Everything a request handler or a service needs, built once per server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from controltower.clock import system_clock
from controltower.ingest.alerts import ErrorAlertRules
from controltower.ingest.buffer import IngestBuffer
from controltower.ingest.limits import IngestLimits
from controltower.ingest.metrics import IngestMetrics
from controltower.ingest.routes import Ingestion
from controltower.ingest.spool import Spool
from controltower.ingest.vitals import VitalsPolicy
from controltower.server.services import Service
from controltower.spec import Spec
from controltower.store import Store
from controltower.typing import Clock


def spool_for(root: Path | None, store: Store) -> Spool | None:
    """Where this server spools unwritten events at shutdown: ``.tower/ingest-spool``
    beside tower.toml, else beside the SQLite file; None when neither is known."""
    if root is not None:
        return Spool(root / ".tower" / "ingest-spool")
    if not store.is_postgres and store.url.startswith("sqlite:///"):
        return Spool(Path(store.url.removeprefix("sqlite:///")).resolve().parent / "ingest-spool")
    return None


@dataclass
class ServerContext:
    """The store, the spec and what the server runs.

    ``monitors`` and ``notify`` say whether this process runs the spec's monitors
    and delivers the outbox (turn them off when ``tower monitor`` or another
    dispatcher does that work); ``backups`` whether it runs the ``[backup]``
    schedule and RPO watch; ``deploys`` whether it runs the deploy reconciler
    (a deploy whose ``tower`` died is finished or rolled back); ``dashboard`` whether it serves the dashboard and
    the status page.
    """

    store: Store
    spec: Spec | None = None
    clock: Clock = system_clock
    services: list[Service] = field(default_factory=list)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    ingestion: Ingestion | None = None
    rules: ErrorAlertRules = field(default_factory=ErrorAlertRules)
    monitors: bool = True
    notify: bool = True
    backups: bool = True
    deploys: bool = True
    dashboard: bool = True
    root: Path | None = None

    @property
    def runs_monitors(self) -> bool:
        """Whether this process checks the spec's monitors."""
        return self.spec is not None and self.monitors and bool(self.spec.monitors)

    @property
    def runs_notify(self) -> bool:
        """Whether this process delivers the outbox to the spec's channels."""
        return self.spec is not None and self.notify and bool(self.spec.alerts.channels)

    @property
    def runs_backups(self) -> bool:
        """Whether this process runs the [backup] schedule and RPO watch."""
        from controltower.backup.service import wanted

        return self.spec is not None and self.backups and wanted(self.spec)

    @classmethod
    def build(
        cls,
        store: Store,
        spec: Spec | None = None,
        *,
        clock: Clock = system_clock,
        monitors: bool = True,
        notify: bool = True,
        backups: bool = True,
        dashboard: bool = True,
    ) -> ServerContext:
        context = cls(
            store=store,
            spec=spec,
            clock=clock,
            monitors=monitors,
            notify=notify,
            backups=backups,
            dashboard=dashboard,
            root=Path(spec.source).resolve().parent if spec is not None else None,
        )
        server = spec.server if spec is not None else None
        buffer = IngestBuffer(server.buffer_size if server else 20000)
        context.ingestion = Ingestion(
            store=store,
            buffer=buffer,
            metrics=IngestMetrics(context.registry),
            limits=IngestLimits.from_spec(server),
            spool=spool_for(context.root, store),
            clock=clock,
        )
        if spec is not None:
            context.rules = ErrorAlertRules.from_spec(spec)
            context.ingestion.vitals_policies = {
                p.name: VitalsPolicy(tuple(p.allowed_origins), p.vitals_rate_limit)
                for p in spec.server.projects
            }
        return context

    @property
    def title(self) -> str:
        """The name the dashboard and the status page carry."""
        if self.spec is None:
            return "tower"
        return self.spec.server.title or self.spec.service.name

    @property
    def public_url(self) -> str:
        return self.spec.server.public_url if self.spec is not None else ""
