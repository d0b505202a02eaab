"""Start the worker processes, fold their reports, watch the budgets, stop cleanly."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queue_module
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from controltower.clock import system_clock
from controltower.exceptions import LoadTestError
from controltower.load.budgets import lost
from controltower.load.plan import Plan, redact_target
from controltower.load.results import Aggregate, LoadResult, Second
from controltower.load.worker import run_worker

__all__ = ["Progress", "run_load"]

STARTUP_DEADLINE = 60.0
FINISH_DEADLINE = 10.0


@dataclass(frozen=True)
class Progress:
    """What the live display shows once a second."""

    elapsed: float
    duration: float
    requests: int
    errors: int
    rate: float
    p50: float
    p95: float
    p99: float
    lost: tuple[str, ...] = ()


def _plan_dict(plan: Plan) -> dict[str, Any]:
    data = asdict(plan)
    data["url"] = redact_target(plan.url)
    data["scenarios"] = [
        {"name": scenario.name, "weight": scenario.weight, "steps": len(scenario.steps)}
        for scenario in plan.scenarios
    ]
    return data


def run_load(
    plan: Plan,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> LoadResult:
    """Run ``plan`` to the end, to a lost budget (``abort_on_fail``) or to Ctrl-C.

    An interrupted or aborted run still returns what was measured so far.
    """
    context = _context()
    messages: Any = context.Queue()
    go = context.Event()
    stop = context.Event()
    start = context.Value("d", 0.0)
    processes = [
        context.Process(
            target=run_worker,
            args=(plan, index, messages, go, start, stop),
            name=f"tower-load-{index}",
            daemon=True,
        )
        for index in range(plan.workers)
    ]
    aggregate = Aggregate([scenario.name for scenario in plan.scenarios], plan.workers)
    interrupted = False
    aborted = ""
    stopped_at: float | None = None
    started_at = datetime.now(UTC)
    t0 = system_clock.monotonic()
    finished: set[int] = set()
    last_shown = -1
    try:
        try:
            with _bare_main():
                for process in processes:
                    process.start()
            _wait_ready(messages, processes)
        except KeyboardInterrupt:
            interrupted = True
            stopped_at = system_clock.monotonic()
        if not interrupted:
            t0 = system_clock.monotonic() + 0.05
            start.value = t0
            started_at = datetime.now(UTC)
            go.set()
        while go.is_set() and len(finished) < plan.workers:
            try:
                message = _next(messages)
                now = system_clock.monotonic()
                if message is not None:
                    if message["kind"] == "failed":
                        aggregate.failures.append(f"worker {message['worker']}: {message['error']}")
                        finished.add(int(message["worker"]))
                        stopped_at = stopped_at or now
                        stop.set()
                        continue
                    aggregate.fold(message)
                    if message["kind"] == "final":
                        finished.add(int(message["worker"]))
                        continue
                    second = int(message["second"])
                    if second > last_shown:
                        last_shown = second
                        status = _progress(plan, aggregate, second, now - t0)
                        if plan.abort_on_fail and not aborted and status.lost:
                            aborted = "; ".join(status.lost)
                            stopped_at = stopped_at or now
                            stop.set()
                        if on_progress is not None:
                            on_progress(status)
                if now - t0 > plan.duration + plan.timeout + FINISH_DEADLINE or (
                    stopped_at is not None and now - stopped_at > FINISH_DEADLINE
                ):
                    aggregate.failures.append("workers did not finish in time and were stopped")
                    break
                if not any(process.is_alive() for process in processes) and messages.empty():
                    missing = set(range(plan.workers)) - finished
                    if missing:
                        aggregate.failures.append(
                            f"workers {sorted(missing)} exited without a report"
                        )
                    break
            except KeyboardInterrupt:
                # stop sending, then keep collecting: each worker still sends its final report
                interrupted = True
                stopped_at = stopped_at or system_clock.monotonic()
                stop.set()
    finally:
        stop.set()
        for process in processes:
            if process.pid is None:
                continue
            process.join(timeout=3 if go.is_set() else 0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2)
        messages.close()
    # the time the load ran: the whole duration, or until it was told to stop
    end = stopped_at if stopped_at is not None else system_clock.monotonic()
    elapsed = max(1e-9, min(end - t0, plan.duration))
    total = aggregate.total()
    return LoadResult(
        plan=_plan_dict(plan),
        started_at=started_at.isoformat(),
        elapsed=elapsed,
        total=total,
        scenarios=aggregate.scenarios,
        timeline=sorted(aggregate.timeline.items()),
        sample=aggregate.sample(),
        interrupted=interrupted,
        aborted=aborted,
        worker_cpu=dict(aggregate.cpu_total),
        failures=aggregate.failures,
        dropped=aggregate.dropped,
        lag=aggregate.lag,
    )


def _context() -> Any:
    """Workers fork from a server process that imported the worker module once.

    Spawning imports controltower afresh in every worker (about a second each,
    several on a busy machine); forking the CLI process itself would copy its
    threads' locks. The fork server is a clean single-threaded process started
    on first use and kept for later runs (tower check, tests); where it does
    not exist (Windows) workers are spawned.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["controltower.load.worker"])
    return context


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Start workers as if ``__main__`` were empty: they need nothing from it.

    multiprocessing re-runs the main script in each new process (the ``tower``
    script imports every command, seconds on a busy machine), and refuses to
    start from a script without an ``if __name__ == "__main__"`` guard. The
    workers get only a Plan and queues, all from controltower's own modules.
    """
    real = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if real is not None:
            sys.modules["__main__"] = real


def _next(messages: Any) -> dict[str, Any] | None:
    try:
        message: dict[str, Any] = messages.get(timeout=0.2)
    except queue_module.Empty:
        return None
    return message


def _wait_ready(messages: Any, processes: list[Any]) -> None:
    ready: set[int] = set()
    deadline = system_clock.monotonic() + STARTUP_DEADLINE
    while len(ready) < len(processes):
        remaining = deadline - system_clock.monotonic()
        if remaining <= 0:
            raise LoadTestError(
                f"{len(processes) - len(ready)} load worker(s) did not start in {STARTUP_DEADLINE:g}s",
                hint="the machine may be overloaded; try fewer --workers",
            )
        try:
            message = messages.get(timeout=min(remaining, 0.5))
        except queue_module.Empty:
            if not all(process.is_alive() for process in processes):
                raise LoadTestError("a load worker exited while starting") from None
            continue
        if message["kind"] == "ready":
            ready.add(int(message["worker"]))


def _progress(plan: Plan, aggregate: Aggregate, second: int, elapsed: float) -> Progress:
    latest = aggregate.timeline.get(second)
    current = latest.figures() if latest is not None else Second().figures()
    total = aggregate.total()
    names = [scenario.name for scenario in plan.scenarios]
    weights = sum(scenario.weight for scenario in plan.scenarios)
    fractions = {scenario.name: scenario.weight / weights for scenario in plan.scenarios}
    if plan.model == "open":
        expected = plan.expected_requests() * _steps_per_arrival(plan)
    else:
        expected = total.requests / max(elapsed, 1e-3) * plan.duration
    dead = lost(
        plan.conditions,
        {scenario.name: scenario.conditions for scenario in plan.scenarios if scenario.conditions},
        total,
        {name: aggregate.scenarios[name] for name in names},
        fractions,
        expected,
    )
    return Progress(
        elapsed=min(elapsed, plan.duration),
        duration=plan.duration,
        requests=total.requests,
        errors=total.error_count,
        rate=float(current["requests"]),
        p50=current["p50"],
        p95=current["p95"],
        p99=current["p99"],
        lost=tuple(dead),
    )


def _steps_per_arrival(plan: Plan) -> float:
    weights = sum(scenario.weight for scenario in plan.scenarios)
    return sum(scenario.weight * len(scenario.steps) for scenario in plan.scenarios) / weights
