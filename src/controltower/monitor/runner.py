"""``tower monitor``: the loop that checks, records, alerts, delivers and shares the work.

Five concurrent parts on one event loop:

- the scheduler runs each held monitor's checks on its beat (probes -> outcomes);
- the writer flushes outcomes every ``flush_interval`` (at once after a failure)
  in one transaction (results, counters, rollups), in a thread;
- the lease loop renews this worker's monitors and claims free or expired ones;
- the alerting loop, in the one worker holding the ``monitor-alerting`` lease,
  turns counters into incidents and outbox rows, and prunes old results;
- the dispatcher delivers the outbox to the channels (every worker runs one;
  rows are claimed with ``SKIP LOCKED``, so each is sent by one of them).

A failing check wakes the writer, whose flush wakes the alerting pass, whose
enqueued rows wake the dispatcher: an outage reaches the channels a few
milliseconds after the check that crossed the threshold, not a poll later.

Embedding it (``tower serve`` does)::

    runner = MonitorRunner(spec, store, options=RunnerOptions(), root=spec_dir)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))   # ... later: stop.set(); await task
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select

from controltower.clock import system_clock
from controltower.ingest.vitals import for_monitor
from controltower.monitor.alerting import Alerting
from controltower.monitor.heartbeat import last_ping
from controltower.monitor.leases import MonitorLeases, lease_ttl_for, worker_name
from controltower.monitor.probes import ProbeEnv, check
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import Pending, ResultWriter, RetentionPolicy, prune
from controltower.monitor.scheduler import Scheduler, jitter_offset, percentile
from controltower.notify.dispatch import Dispatcher, wait_either
from controltower.spec import Spec
from controltower.spec.monitors import MonitorSpec
from controltower.store import Locks, Store
from controltower.store.models.monitor import MonitorState
from controltower.typing import Clock

log = structlog.get_logger("controltower.monitor")
ALERT_TTL = 5.0


@dataclass
class RunnerOptions:
    """How a runner behaves; the defaults are what ``tower monitor`` uses.

    ``deliver`` runs an outbox dispatcher in the runner (turn it off when another
    process of the same store delivers); ``dispatch_poll`` is how often it looks
    for rows enqueued by other processes (``tower incidents resolve``, deploys).
    ``freeze_gc`` moves everything alive at start (the spec, parsed conditions)
    out of the garbage collector's reach (``gc.freeze``), so full collections
    stay short and do not delay checks.
    """

    owner: str = ""
    lease_ttl: float = 0.0
    flush_interval: float = 0.25
    alert_interval: float = 0.5
    prune_interval: float = 3600.0
    concurrency: int = 200
    jitter: bool = True
    retention: RetentionPolicy | None = None
    deliver: bool = True
    dispatch_poll: float = 1.0
    freeze_gc: bool = True
    stop_timeout: float = 15.0


class MonitorRunner:
    def __init__(
        self,
        spec: Spec,
        store: Store,
        *,
        options: RunnerOptions | None = None,
        clock: Clock = system_clock,
        root: Path | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        options = options or RunnerOptions()
        self.options = replace(
            options,
            owner=options.owner
            or worker_name(spec.service.name, spec.environment, spec.source or ""),
            lease_ttl=options.lease_ttl or lease_ttl_for(m.interval for m in spec.monitors),
        )
        self.clock = clock
        self.root = root or Path.cwd()
        self.writer = ResultWriter(store, worker=self.options.owner)
        self.monitors: dict[int, MonitorSpec] = {}
        self.ids: dict[str, int] = {}
        self.service_id = 0
        self.scheduler: Scheduler | None = None
        self.leader = False
        self.held = 0
        self.passes = 0
        self._last_prune = -math.inf
        self._failing: set[int] = set()
        self.ready = asyncio.Event()
        self.dispatcher: Dispatcher | None = None
        self._flush_wake = asyncio.Event()
        self._alert_wake = asyncio.Event()
        self._deliver_wake = asyncio.Event()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever), then flush and hand the monitors back."""
        stop = stop or asyncio.Event()
        self.service_id, self.ids = await asyncio.to_thread(sync_monitors, self.store, self.spec)
        by_name = {m.name: m for m in self.spec.monitors}
        self.monitors = {mid: by_name[name] for name, mid in self.ids.items()}
        env = ProbeEnv.for_spec(
            self.spec,
            root=self.root,
            last_ping=lambda name: last_ping(self.store, self.ids[name]),
            vitals=lambda monitor: for_monitor(self.store, monitor, self.clock.now()),
            now=self.clock.now,
            max_connections=max(self.options.concurrency, 10),
        )
        self.env = env
        self.scheduler = Scheduler(self._check, concurrency=self.options.concurrency)
        leases = MonitorLeases(
            self.store,
            self.service_id,
            self.options.owner,
            ttl=self.options.lease_ttl,
            handoff=max(1.0, 4 * self.options.flush_interval),
            clock=self.clock,
        )
        alerting = Alerting(
            self.store,
            service_id=self.service_id,
            service=self.spec.service.name,
            environment=self.spec.environment or "default",
            monitors=self.spec.monitors,
            alerts=self.spec.alerts,
        )
        tasks = [
            asyncio.create_task(self._lease_loop(leases, stop)),
            asyncio.create_task(self._flush_loop(stop)),
            asyncio.create_task(self._alert_loop(alerting, stop)),
        ]
        delivering: asyncio.Task[None] | None = None
        if self.options.deliver:
            self.dispatcher = Dispatcher.from_spec(
                self.spec.alerts, self.store, clock=self.clock, name=f"{self.options.owner}:notify"
            )
            delivering = asyncio.create_task(
                self.dispatcher.run(stop, poll=self.options.dispatch_poll, wake=self._deliver_wake)
            )
        try:
            await stop.wait()
        finally:
            stop.set()
            await self.scheduler.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if delivering is not None:
                # Sends in flight finish and claimed rows go back, so a restart
                # neither loses nor repeats a notification.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(delivering, self.options.stop_timeout)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.writer.flush)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(leases.release)
            if self.leader:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(
                        Locks(self.store).release, self._alert_lock, self.options.owner
                    )
            await env.aclose()

    @property
    def _alert_lock(self) -> str:
        return f"monitor-alerting:{self.service_id}"

    async def _check(self, key: int, due: float) -> None:
        monitor = self.monitors[key]
        outcome = await check(monitor, self.env)
        loop = asyncio.get_running_loop()
        next_due = self.clock.now() + timedelta(seconds=due + monitor.interval - loop.time())
        self.writer.add(
            key,
            outcome,
            next_due_at=next_due,
            failure_threshold=monitor.failure_threshold,
            success_threshold=monitor.success_threshold,
        )
        if not outcome.ok:
            self._failing.add(key)
            self._flush_wake.set()
        elif key in self._failing:
            self._failing.discard(key)
            self._flush_wake.set()

    async def _lease_loop(self, leases: MonitorLeases, stop: asyncio.Event) -> None:
        assert self.scheduler is not None
        every = max(self.options.lease_ttl / 3, 0.05)
        while not stop.is_set():
            try:
                held = await asyncio.to_thread(leases.sync, set(self.monitors))
                self.held = len(held)
                self._reschedule(held, await asyncio.to_thread(self._due_times, held))
                if not self.ready.is_set() and self.options.freeze_gc:
                    # Thousands of monitors are a large, long-lived object graph
                    # (specs, parsed conditions, timers); a full collection walking
                    # it would stall the loop for hundreds of milliseconds.
                    gc.collect()
                    gc.freeze()
                self.ready.set()
            except Exception as exc:
                log.warning("lease renewal failed", error=str(exc))
            await _wait(stop, every)

    def _due_times(self, held: set[int]) -> dict[int, datetime | None]:
        assert self.scheduler is not None
        new = held - self.scheduler.keys()
        if not new:
            return {}
        with self.store.session() as session:
            rows = session.execute(
                select(MonitorState.id, MonitorState.next_due_at).where(MonitorState.id.in_(new))
            ).all()
        return {row[0]: row[1] for row in rows}

    def _reschedule(self, held: set[int], due_at: dict[int, datetime | None]) -> None:
        assert self.scheduler is not None
        current = self.scheduler.keys()
        for key in current - held:
            self.scheduler.remove(key)
        loop = asyncio.get_running_loop()
        now_wall = self.clock.now()
        for key in held - current:
            monitor = self.monitors[key]
            stored = due_at.get(key)
            if stored is not None:
                delay = max(0.0, (stored - now_wall).total_seconds())
                delay = min(delay, monitor.interval)
            elif self.options.jitter:
                delay = jitter_offset(monitor.name, monitor.interval)
            else:
                delay = 0.0
            self.scheduler.add(key, monitor.interval, loop.time() + delay)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_either(stop, self._flush_wake, self.options.flush_interval)
            woken = self._flush_wake.is_set()
            self._flush_wake.clear()
            batch = self.writer.take()
            if not batch:
                continue
            try:
                await asyncio.to_thread(self.writer.flush, batch)
            except Exception as exc:
                log.warning("writing results failed; keeping them for the next try", error=str(exc))
                self._requeue(batch)
                await _wait(stop, self.options.flush_interval)
                continue
            if woken:
                self._alert_wake.set()

    def _requeue(self, batch: list[Pending]) -> None:
        self.writer.pending[:0] = batch

    async def _alert_loop(self, alerting: Alerting, stop: asyncio.Event) -> None:
        locks = Locks(self.store, clock=self.clock)
        policy = self.options.retention or RetentionPolicy.from_spec(self.spec.store)
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                self.leader = await asyncio.to_thread(
                    locks.acquire,
                    self._alert_lock,
                    self.options.owner,
                    # Leadership changes hands less eagerly than a monitor: a pass
                    # that stalls a second under load must not flap it.
                    ttl=max(self.options.lease_ttl, ALERT_TTL),
                )
                if self.leader:
                    summary = await asyncio.to_thread(alerting.run_pass, self.clock.now())
                    self.passes += 1
                    if summary.enqueued:
                        self._deliver_wake.set()
                    if loop.time() - self._last_prune >= self.options.prune_interval:
                        self._last_prune = loop.time()
                        keep = {key: m.keep_results for key, m in self.monitors.items()}
                        await asyncio.to_thread(
                            prune, self.store, self.clock.now(), policy, keep=keep
                        )
            except Exception as exc:
                log.warning("alerting pass failed; retrying", error=str(exc))
            await wait_either(stop, self._alert_wake, self.options.alert_interval)
            self._alert_wake.clear()

    def stats(self) -> dict[str, Any]:
        drift = list(self.scheduler.drift) if self.scheduler else []
        return {
            "monitors": self.held,
            "checks": self.scheduler.started if self.scheduler else 0,
            "skipped": self.scheduler.skipped if self.scheduler else 0,
            "written": self.writer.written,
            "drift_p50": percentile(drift, 0.5),
            "drift_p99": percentile(drift, 0.99),
            "leader": self.leader,
        }


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
