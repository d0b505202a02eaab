"""One side of the scheduling benchmark, run in its own process so its CPU is its own.

    python -m benchmarks.monitor.sides tower --url http://127.0.0.1:18650 --monitors 10000
    python -m benchmarks.monitor.sides naive --url http://127.0.0.1:18650 --monitors 10000

``tower`` is ``MonitorRunner`` as ``tower monitor`` runs it (scheduler, result
writer with rollups into a SQLite store, leases, alerting passes, outbox
dispatcher). ``naive`` is the loop people write by hand, and the shape of
Gatus's per-endpoint goroutines: one asyncio task per monitor that checks, keeps
its last 100 results in memory, then sleeps one interval; ``--client`` picks
httpx (the obvious choice) or aiohttp (the usual choice for many connections).

Both check the same URLs with the same conditions (status 200 and
``body.status == "pass"``), start each monitor at the same offset, use one
shared httpx client with the same pool size, and measure the same things over
the same window after a warm-up: how late each check started against its beat
(drift) and the CPU the process used (user + system, all threads). The result
is one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx

from controltower.monitor.scheduler import jitter_offset, percentile


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(
    drifts: list[float], cpu: float, wall: float, checks: int, failed: int, **extra: Any
) -> dict[str, Any]:
    return {
        "checks": checks,
        "failed": failed,
        "drift_p50": percentile(drifts, 0.50),
        "drift_p99": percentile(drifts, 0.99),
        "drift_max": max(drifts, default=0.0),
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "cores": cpu / wall if wall else 0.0,
        **extra,
    }


def progress(side: str, text: str) -> None:
    print(f"  [{side}] {text}", file=sys.stderr, flush=True)


async def tower(args: argparse.Namespace) -> dict[str, Any]:
    from controltower.monitor import MonitorRunner, RunnerOptions
    from controltower.spec import Spec
    from controltower.store import Store

    started = time.monotonic()
    spec = Spec.model_validate(
        {
            "service": {"name": "bench"},
            "monitors": [
                {
                    "name": f"m{index}",
                    "url": f"{args.url}/m{index}",
                    "interval": args.interval,
                    "conditions": ["status == 200", 'body.status == "pass"'],
                }
                for index in range(args.monitors)
            ],
        }
    )
    with tempfile.TemporaryDirectory(prefix="tower-bench-") as tmp:
        url = args.store or f"sqlite:///{Path(tmp) / 'tower.db'}"
        store = Store.open(url)
        runner = MonitorRunner(spec, store, options=RunnerOptions(owner="bench"), root=Path(tmp))
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await asyncio.wait_for(runner.ready.wait(), 300)
        ready = time.monotonic() - started
        progress("tower", f"{runner.held} monitors held after {ready:.1f}s; warming up")
        await _tick("tower", args.warmup, lambda: runner.stats()["checks"])
        assert runner.scheduler is not None
        mark, checks0 = len(runner.scheduler.drift), runner.scheduler.started
        cpu0, wall0, written0 = cpu_seconds(), time.monotonic(), runner.writer.written
        await _tick("tower", args.measure, lambda: runner.stats()["checks"])
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        drifts = list(runner.scheduler.drift)[mark:]
        checks = runner.scheduler.started - checks0
        skipped = runner.scheduler.skipped
        stop.set()
        await task
        from sqlalchemy import func, select

        from controltower.store.models import MonitorResult

        with store.session() as session:
            failed = session.scalar(
                select(func.count()).select_from(MonitorResult).where(MonitorResult.ok.is_(False))
            )
        store.close()
    return summary(
        drifts,
        cpu,
        wall,
        checks,
        int(failed or 0),
        skipped=skipped,
        written=runner.writer.written - written0,
        ready_seconds=ready,
    )


async def naive(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    drifts: list[float] = []
    counts = {"checks": 0, "failed": 0}
    results: dict[int, deque[bool]] = {}
    get = await _client(args.client)

    async def watch(index: int, first_due: float) -> None:
        url = f"{args.url}/m{index}"
        kept = results.setdefault(index, deque(maxlen=100))
        due = first_due
        await asyncio.sleep(max(0.0, due - loop.time()))
        while True:
            drifts.append(loop.time() - due)
            counts["checks"] += 1
            try:
                status, body = await get(url)
                ok = status == 200 and json.loads(body).get("status") == "pass"
            except Exception:  # a timeout, a refused or reset connection, bad JSON
                ok = False
            kept.append(ok)
            counts["failed"] += not ok
            await asyncio.sleep(args.interval)
            due += args.interval

    start = loop.time()
    tasks = [
        asyncio.create_task(watch(index, start + jitter_offset(f"m{index}", args.interval)))
        for index in range(args.monitors)
    ]
    side = f"naive {args.client}"
    progress(side, f"{len(tasks)} tasks started; warming up")

    # A saturated loop fires its timers late, so the window is kept by a thread
    # on the wall clock: it reports on time whatever state the loop is in.
    def measure() -> None:
        time.sleep(args.warmup)
        mark, checks0, failed0 = len(drifts), counts["checks"], counts["failed"]
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        end = wall0 + args.measure
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(15.0, left))
            progress(
                side,
                f"{counts['checks'] - checks0} checks in the window, "
                f"{max(0.0, end - time.monotonic()):.0f}s left",
            )
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        window = drifts[mark:]
        result = summary(
            window, cpu, wall, counts["checks"] - checks0, counts["failed"] - failed0, skipped=0
        )
        # Report and leave at once: cancelling thousands of requests stuck in a
        # saturated client can take minutes, and nothing here needs cleaning up.
        print(json.dumps(result), flush=True)
        os._exit(0)

    threading.Thread(target=measure, daemon=True).start()
    await asyncio.Event().wait()
    raise AssertionError("the measuring thread ends the process")


async def _client(name: str) -> Any:
    """``get(url) -> (status, body)`` through one shared client with a pool of 200."""
    if name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=10),
        )

        async def get_aiohttp(url: str) -> tuple[int, bytes]:
            async with session.get(url) as response:
                return response.status, await response.read()

        return get_aiohttp
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=200), timeout=10
    )

    async def get_httpx(url: str) -> tuple[int, bytes]:
        response = await client.get(url)
        return response.status_code, response.content

    return get_httpx


async def _tick(side: str, seconds: float, checks: Any) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(15.0, left))
        progress(side, f"{checks()} checks so far, {max(0.0, end - time.monotonic()):.0f}s left")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=["tower", "naive"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--measure", type=float, default=60.0)
    parser.add_argument("--store", default="")
    parser.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    run = asyncio.run
    if args.uvloop:
        import uvloop

        run = uvloop.run
    result = run(tower(args) if args.side == "tower" else naive(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
