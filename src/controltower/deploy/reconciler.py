"""The deploy reconciler: ``tower serve`` and ``tower monitor`` finish what a dead ``tower deploy`` left.

Every ``poll`` seconds it looks in the store for a release of the spec's service
that is still ``running`` or ``rolling_back`` while the deploy lock's owner is
gone (its process no longer exists, or it stopped renewing the lock). It then
takes the lock and does what the deploy would have done:

- a deploy that died while a step was being analysed is analysed on, here: a
  failed verdict rolls it back, passing ones finish it;
- one that had passed its smoke checks is finished;
- any other is rolled back, and an interrupted rollback is finished.

A deploy paused for a decision (`tower deploy promote` or `abort`) is left as
it is. Warm blue-green releases are stopped once their ``warm_window`` is over.
The check itself is two small queries, so it runs on a single machine by
default; the driver (and the local agent) is only touched when there is work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy import select

from controltower.clock import system_clock
from controltower.deploy.engine import ACTIVE, Engine
from controltower.deploy.lock import DeployLock, lock_name
from controltower.deploy.views import ReleaseView
from controltower.exceptions import TowerError
from controltower.spec import Spec
from controltower.store import Store, service_id
from controltower.store.models.deploy import Release
from controltower.typing import Clock

log = logging.getLogger("controltower.deploy")


class DeployReconciler:
    """A service (``name`` and ``async run(stop)``) for ``tower serve`` and ``tower monitor``."""

    name = "deploys"

    def __init__(
        self, spec: Spec, store: Store, *, clock: Clock = system_clock, poll: float = 0.5
    ) -> None:
        self.spec = spec
        self.store = store
        self.clock = clock
        self.poll = poll
        self.environment = spec.environment or "default"
        self.lock = DeployLock(
            store,
            lock_name(spec.service.name, self.environment),
            clock=clock,
            ttl=spec.deploy.lock_timeout,
        )
        self._engine: Engine | None = None
        self._service: int | None = None
        self.recovered: list[ReleaseView] = []
        self.failing: str | None = None  # the reason the last tick failed, warned about once

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    done = await asyncio.to_thread(self.tick)
                except TowerError as exc:
                    self._failed(str(exc))
                    done = []
                else:
                    if self.failing is not None:
                        log.info("deploy reconciler: working again")
                        self.failing = None
                for release in done:
                    log.info(
                        "deploy reconciler: release %s of %s ended %s",
                        release.id,
                        release.version,
                        release.status,
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll)
        finally:
            if self._engine is not None:
                self._engine.driver.close()

    def _failed(self, reason: str) -> None:
        """Warn about a failing tick once, and again only when the reason changes.

        The loop retries every ``poll`` seconds; a driver that cannot be built
        (a missing token, say) would otherwise log the same line twice a second.
        """
        if reason == self.failing:
            log.debug("deploy reconciler: still failing: %s", reason)
            return
        self.failing = reason
        log.warning(
            "deploy reconciler: %s (retrying every %gs; warned again only if the reason changes)",
            reason,
            self.poll,
        )

    def tick(self) -> list[ReleaseView]:
        """Recover what needs it, once; returns the releases it ended."""
        if not self._needs_work():
            return []
        engine = self._engine or self._open()
        return self._recover(engine)

    def _recover(self, engine: Engine) -> list[ReleaseView]:
        done = engine.recover(resume_analysis=True)
        self.recovered.extend(done)
        return done

    def _needs_work(self) -> bool:
        with self.store.session() as session:
            if self._service is None:
                self._service = service_id(session, self.spec.service.name, self.environment)
            now: datetime = self.clock.now()
            active = session.scalar(
                select(Release.id).where(
                    Release.service_id == self._service, Release.status.in_(ACTIVE)
                )
            )
            warm = session.scalar(
                select(Release.id).where(
                    Release.service_id == self._service,
                    Release.warm_until.is_not(None),
                    Release.warm_until <= now,
                )
            )
            known = active is not None or session.scalar(
                select(Release.id).where(Release.service_id == self._service).limit(1)
            )
        if known and self._engine is None:
            self._open().active()  # ready before it is needed: a rollback must not wait
        if active is None and warm is None:
            return False
        return self.lock.holder() is None

    def _open(self) -> Engine:
        from controltower.deploy import make_driver, spec_root

        root = spec_root(self.spec)
        driver = make_driver(self.spec, root=root)
        self._engine = Engine(
            self.spec, self.store, driver, root=root, clock=self.clock, actor="tower-reconciler"
        )
        return self._engine
