"""One worker process: sends its share of the load and reports a histogram every second.

Open model: arrival ``j`` is due at ``t0 + schedule.at(j)``; worker ``k`` of ``n``
sends the arrivals with ``j % n == k``. A request's latency runs from the moment
it was due, so time spent waiting for a free connection or for a stalled server
counts (no coordinated omission). Closed model: each user sends, waits for the
answer, thinks, and sends again; latency runs from the send.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hdrh.histogram import HdrHistogram

from controltower.clock import system_clock
from controltower.load.client import ConnectError, Connection, ProtocolError, Target, build_request
from controltower.load.plan import Plan, Scenario, Schedule, Step, resolve_capture, substitute

__all__ = ["HIGHEST_US", "SAMPLE_SIZE", "new_histogram", "run_worker"]

HIGHEST_US = 3_600_000_000
SAMPLE_SIZE = 10_000
# Event-loop timers fire to the nearest millisecond: waking this much before an
# arrival is due and sending at once keeps the send within a fraction of a
# millisecond of the schedule instead of up to a millisecond after it.
TIMER_LEAD = 0.0005
# Stopped early (Ctrl-C, a lost budget): how long requests in flight may still finish.
STOP_GRACE = 2.0
Message = dict[str, Any]


def new_histogram() -> HdrHistogram:
    """Microseconds from 1 µs to one hour, three significant digits."""
    return HdrHistogram(1, HIGHEST_US, 3)


class _Recorder:
    def __init__(self, names: list[str], sample_size: int, seed: int) -> None:
        self.names = names
        self.histograms = {name: new_histogram() for name in names}
        self.counts = dict.fromkeys(names, 0)
        self.errors: dict[str, dict[str, int]] = {name: {} for name in names}
        self.sample: list[int] = []
        self.sample_size = sample_size
        self.seen = 0
        self.random = random.Random(seed)

    def record(self, name: str, latency: float | None, error: str | None) -> None:
        self.counts[name] += 1
        if error is not None:
            bucket = self.errors[name]
            bucket[error] = bucket.get(error, 0) + 1
        if latency is None:
            return
        micros = min(max(int(latency * 1_000_000), 1), HIGHEST_US)
        self.histograms[name].record_value(micros)
        self.seen += 1
        if len(self.sample) < self.sample_size:
            self.sample.append(micros)
        else:
            slot = self.random.randrange(self.seen)
            if slot < self.sample_size:
                self.sample[slot] = micros

    def flush(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.names:
            histogram = self.histograms[name]
            if self.counts[name] == 0:
                continue
            encoded = histogram.encode() if histogram.get_total_count() else b""
            out[name] = {"hist": encoded, "count": self.counts[name], "errors": self.errors[name]}
            if encoded:
                self.histograms[name] = new_histogram()  # ten times cheaper than reset()
            self.counts[name] = 0
            self.errors[name] = {}
        return out


class _Worker:
    def __init__(self, plan: Plan, index: int, t0: float, send: Callable[[Message], None]) -> None:
        self.plan = plan
        self.index = index
        self.t0 = t0
        self.end = t0 + plan.duration
        self.send = send
        self.target = Target.from_url(plan.url)
        self.ssl_context: ssl.SSLContext | None = None
        if self.target.scheme == "https":
            self.ssl_context = ssl.create_default_context()
            if plan.insecure:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
        names = [scenario.name for scenario in plan.scenarios]
        share = max(1, SAMPLE_SIZE // max(1, plan.workers))
        self.recorder = _Recorder(names, share, plan.seed * 1000 + index)
        self.payloads: dict[int, bytes] = {}
        for scenario in plan.scenarios:
            for step in scenario.steps:
                if not step.templated:
                    self.payloads[id(step)] = self._build(step, {})
        chooser = random.Random(plan.seed * 7919 + index)
        weights = [scenario.weight for scenario in plan.scenarios]
        self.choices = chooser.choices(plan.scenarios, weights, k=4096)
        self.lag_max = 0.0
        self.lag = new_histogram()
        self.queued_max = 0
        self.stopping = False
        self.active = 0
        self.dropped = 0
        self.cpu = 0.0

    def _build(self, step: Step, values: dict[str, Any]) -> bytes:
        headers = {name: substitute(value, values) for name, value in step.headers}
        return build_request(
            self.target,
            step.method,
            substitute(step.path, values),
            headers,
            substitute(step.body, values).encode("utf-8"),
        )

    def connection(self) -> Connection:
        return Connection(self.target, timeout=self.plan.timeout, ssl_context=self.ssl_context)

    async def scenario(self, connection: Connection, scenario: Scenario, due: float) -> None:
        values: dict[str, Any] = {}
        record = self.recorder.record
        for position, step in enumerate(scenario.steps):
            payload = self.payloads.get(id(step)) or self._build(step, values)
            begin = due if position == 0 else system_clock.monotonic()
            try:
                response = await connection.request(payload, head=step.method == "HEAD")
            except TimeoutError:
                record(scenario.name, system_clock.monotonic() - begin, "timeout")
                connection.close()
                return
            except ConnectError:
                record(scenario.name, None, "connect")
                return
            except ProtocolError:
                record(scenario.name, None, "protocol")
                connection.close()
                return
            # From the due time, or from the send when the timer woke a little early.
            latency = response.received - min(begin, response.sent)
            if response.status not in step.expect:
                record(scenario.name, latency, f"status_{response.status // 100}xx")
                return
            record(scenario.name, latency, None)
            if step.capture:
                headers = response.headers()
                for name, expression in step.capture:
                    values[name] = resolve_capture(
                        expression, response.status, headers, response.body
                    )

    async def ticker(self, stop: Callable[[], bool]) -> None:
        second = 0
        while True:
            boundary = self.t0 + second + 1
            await asyncio.sleep(max(0.0, boundary - system_clock.monotonic()))
            self.send(self._interval(second))
            second += 1
            if stop():
                self.stopping = True
                self.end = min(self.end, system_clock.monotonic())

    def _interval(self, second: int) -> Message:
        cpu, self.cpu = time.process_time() - self.cpu, time.process_time()
        message = {
            "kind": "interval",
            "worker": self.index,
            "second": second,
            "scenarios": self.recorder.flush(),
            "lag_max": self.lag_max,
            "queued_max": self.queued_max,
            "cpu": cpu,
        }
        self.lag_max = 0.0
        self.queued_max = 0
        return message

    async def run(self, stop: Callable[[], bool]) -> None:
        await asyncio.sleep(max(0.0, self.t0 - system_clock.monotonic()))
        self.cpu = time.process_time()
        ticker = asyncio.create_task(self.ticker(stop))
        try:
            if self.plan.model == "open":
                await self.open_model()
            else:
                await self.closed_model()
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        # answers that arrive after the end belong to the last second of the run
        last = max(0, math.ceil(self.plan.duration) - 1)
        second = min(max(0, int(system_clock.monotonic() - self.t0)), last)
        final = self._interval(second)
        final["kind"] = "final"
        final["sample"] = self.recorder.sample
        final["seen"] = self.recorder.seen
        final["dropped"] = self.dropped
        final["lag"] = self.lag.encode() if self.lag.get_total_count() else b""
        self.send(final)

    async def open_model(self) -> None:
        plan = self.plan
        loop = asyncio.get_running_loop()
        schedule = Schedule(plan.rate, plan.ramp_up)
        workers = plan.workers
        lanes = plan.connections // workers + (1 if self.index < plan.connections % workers else 0)
        lanes = max(1, lanes)
        pending: deque[tuple[float, Scenario]] = deque()
        idle: list[asyncio.Future[tuple[float, Scenario] | None]] = []

        async def lane() -> None:
            connection = self.connection()
            try:
                while True:
                    if pending:
                        due, scenario = pending.popleft()
                        self.active += 1
                    else:
                        waiter: asyncio.Future[tuple[float, Scenario] | None] = loop.create_future()
                        idle.append(waiter)
                        item = await waiter  # the dispatcher counted it as active
                        if item is None:
                            return
                        due, scenario = item
                    try:
                        await self.scenario(connection, scenario, due)
                    finally:
                        self.active -= 1
            finally:
                connection.close()

        tasks = [asyncio.create_task(lane()) for _ in range(lanes)]
        while len(idle) < lanes:
            await asyncio.sleep(0)
        choices, count = self.choices, len(self.choices)
        arrival = self.index
        t0 = self.t0
        behind = 0
        while not self.stopping:
            due = t0 + schedule.at(arrival)
            if due >= self.end:
                break
            now = system_clock.monotonic()
            if due - now > TIMER_LEAD:
                behind = 0
                await asyncio.sleep(due - now - TIMER_LEAD)
                if self.stopping:
                    break
                now = system_clock.monotonic()
            else:
                behind += 1
                if behind % 256 == 0:
                    await asyncio.sleep(0)  # behind schedule: let the lanes and the ticker run
            lag = now - due
            if lag > self.lag_max:
                self.lag_max = lag
            self.lag.record_value(min(max(int(lag * 1_000_000), 1), HIGHEST_US))
            scenario = choices[(arrival // workers) % count]
            if idle:
                self.active += 1
                idle.pop().set_result((due, scenario))
            else:
                pending.append((due, scenario))
                if len(pending) > self.queued_max:
                    self.queued_max = len(pending)
            arrival += workers
        grace = plan.timeout + 1
        if self.stopping:
            pending.clear()
            grace = min(grace, STOP_GRACE)
        deadline = system_clock.monotonic() + grace
        delay = 0.005
        while (pending or self.active) and system_clock.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        if not self.stopping:
            self.dropped = len(pending) + self.active
        for waiter in idle:
            if not waiter.done():
                waiter.set_result(None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def closed_model(self) -> None:
        plan = self.plan
        mine = [user for user in range(plan.users) if user % plan.workers == self.index]

        async def user(number: int) -> None:
            start = self.t0 + plan.ramp_up * number / plan.users
            await asyncio.sleep(max(0.0, start - system_clock.monotonic()))
            connection = self.connection()
            turn = number
            try:
                while not self.stopping and system_clock.monotonic() < self.end:
                    scenario = self.choices[turn % len(self.choices)]
                    turn += plan.users
                    await self.scenario(connection, scenario, system_clock.monotonic())
                    if plan.think_time:
                        await asyncio.sleep(plan.think_time)
            finally:
                connection.close()

        tasks = [asyncio.create_task(user(number)) for number in mine]
        cutoff: float | None = None
        while tasks:
            _, waiting = await asyncio.wait(tasks, timeout=0.25)
            tasks = list(waiting)
            if self.stopping and cutoff is None:
                cutoff = (
                    system_clock.monotonic() + STOP_GRACE
                )  # stopped early: don't wait out timeouts
            if tasks and cutoff is not None and system_clock.monotonic() > cutoff:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                break


def _install_loop() -> None:
    """uvloop when installed (measured faster, docs/load.md); ``TOWER_LOAD_UVLOOP=0`` opts out."""
    if os.environ.get("TOWER_LOAD_UVLOOP", "1") in ("0", "false", "no"):
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(plan: Plan, index: int, queue: Any, go: Any, start: Any, stop: Any) -> None:
    """Process entry point: wait for the common start time, run, report, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _install_loop()
    queue.put({"kind": "ready", "worker": index})
    go.wait()
    try:
        asyncio.run(_Worker(plan, index, start.value, queue.put).run(stop.is_set))
    except Exception as exc:
        queue.put({"kind": "failed", "worker": index, "error": f"{type(exc).__name__}: {exc}"})
