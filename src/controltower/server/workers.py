"""The background work ``tower serve`` runs beside its routes: monitors and notifications.

``MonitorService`` runs the spec's monitors (the same ``MonitorRunner`` as
``tower monitor``: leases, results, alerting, pruning). ``NotifyService`` delivers
the outbox (incident and error notifications) to ``[alerts.channels]``. Both stop
when the server stops: checks in flight finish, results are flushed, leases and
claimed outbox rows are handed back.

Either can be split out: ``tower serve --no-monitors`` beside ``tower monitor``
workers, ``--no-notify`` beside another dispatcher. Several of each may run
against one PostgreSQL store; leases and ``SKIP LOCKED`` claims keep them apart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from controltower.clock import system_clock
from controltower.monitor.leases import worker_name
from controltower.monitor.runner import MonitorRunner, RunnerOptions
from controltower.notify.dispatch import Dispatcher
from controltower.spec import Spec
from controltower.store import Store
from controltower.typing import Clock


class MonitorService:
    """The spec's monitors, checked on their schedule until the server stops."""

    name = "monitors"

    def __init__(
        self, spec: Spec, store: Store, *, root: Path | None = None, clock: Clock = system_clock
    ) -> None:
        # In tower serve NotifyService delivers the outbox (error alerts too, and with
        # --no-monitors), so the runner leaves delivery to it.
        self.runner = MonitorRunner(
            spec,
            store,
            options=RunnerOptions(deliver=False),
            clock=clock,
            root=root or Path(spec.source).resolve().parent,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self.runner.run(stop)


class NotifyService:
    """Delivers due outbox rows to the alert channels until the server stops."""

    name = "notify"

    def __init__(
        self, spec: Spec, store: Store, *, clock: Clock = system_clock, poll: float = 1.0
    ) -> None:
        # A stable name, so a server restarted after a crash recovers the sends
        # it had in flight at once instead of waiting for their leases.
        name = worker_name(spec.service.name, spec.environment, spec.source or "")
        self.dispatcher = Dispatcher.from_spec(
            spec.alerts, store, clock=clock, name=f"{name}:serve-notify"
        )
        self.poll = poll

    async def run(self, stop: asyncio.Event) -> None:
        await self.dispatcher.run(stop, poll=self.poll)
