"""10,000 HTTP monitors at a 30 s interval: schedule drift, CPU, and the store after 30 days.

    python -m benchmarks.monitor.run [--record] [--monitors 10000] [--measure 60]
    python -m benchmarks.monitor.run --render /tmp/tower-monitor-bench.json --record

1. A local target (``benchmarks/monitor/target.py``, its own process) answers
   every ``GET`` with ``200 {"status":"pass"}``.
2. Three monitors check the same 10,000 URLs every 30 s, one after the other,
   each in its own process (``benchmarks/monitor/sides.py``), measured over the
   same window after a 30 s warm-up (every monitor has started by then):
   - tower: ``MonitorRunner`` as ``tower monitor`` runs it, storing every result
     with its rollups in SQLite, holding leases, running alerting passes;
   - naive httpx: one asyncio task per monitor that checks then sleeps one
     interval, with one shared httpx client: what a hand-rolled script does, and
     the shape of Gatus's per-endpoint loop. It stores nothing;
   - naive aiohttp: the same loop with aiohttp, the usual choice for many
     connections. It stores nothing either.
   Drift is how late a check started against its beat; CPU is user + system
   time of the process over the window, in cores.
3. The store: 30 simulated days of checks through the real write path with a
   fake clock (``benchmarks/monitor/store_sim.py``), per monitor, times 10,000.

Gatus itself is not on PyPI, npm or Debian, so it cannot be run here; the naive
loops stand in for it. Uptime Kuma is not packaged either.

The goal: drift p99 under 1 s with under half of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.record import record

ROOT = Path(__file__).resolve().parents[2]
LOCK = "/tmp/tower-bench.lock"


def say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    with open(LOCK, "w") as handle:
        say(f"waiting for {LOCK} (no other benchmark may run at the same time)")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def target() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.monitor.target", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("the benchmark target did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def side(name: str, url: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    say(f"{name}: {args.monitors} monitors every {args.interval:g}s ...")
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.monitor.sides", *extra,
            "--url", url, "--monitors", str(args.monitors),
            "--interval", str(args.interval), "--warmup", str(args.warmup),
            "--measure", str(args.measure),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=900, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    say(
        f"{name}: {result['checks']} checks in {result['wall_seconds']:.0f}s, "
        f"drift p99 {result['drift_p99'] * 1000:.0f} ms, {result['cores']:.3f} cores"
    )
    return result


def store(args: argparse.Namespace) -> dict[str, Any]:
    say(f"store: {args.store_monitors} monitors, {args.days} simulated days ...")
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.monitor.store_sim",
            "--monitors", str(args.store_monitors), "--days", str(args.days),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=900, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    say(f"store: {result['bytes_per_monitor'] / 1024:.0f} KiB per monitor")
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def ratio(ours: float, theirs: float) -> str:
    """The peer's figure as a multiple of tower's."""
    if ours <= 0:
        return "-"
    return f"{theirs / ours:.2f}x"


def markdown(
    args: argparse.Namespace, sides: dict[str, dict[str, Any]], sim: dict[str, Any]
) -> str:
    tower = sides["tower"]
    expected = args.monitors * args.measure / args.interval
    lines = [
        f"`python -m benchmarks.monitor.run --record`: {args.monitors:,} HTTP monitors every "
        f"{args.interval:g} s against a local target, measured over {args.measure:g} s after "
        f"a {args.warmup:g} s warm-up ({expected:,.0f} checks due); each monitor in its own "
        "process, one after the other. Gatus and Uptime Kuma are not packaged on PyPI, npm "
        "or Debian, so the peers are the hand-rolled loop (one asyncio task per monitor: "
        "check, then sleep one interval) with httpx and with aiohttp. The peers store "
        "nothing; tower stores every result with its rollups (SQLite), holds leases and "
        "runs alerting passes.",
        "",
        "| monitor | checks done | drift p50 | drift p99 | drift max | CPU (cores) "
        "| drift p99, x tower's | CPU, x tower's |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, result in sides.items():
        lines.append(
            f"| {name} | {result['checks']:,} | {ms(result['drift_p50'])} "
            f"| {ms(result['drift_p99'])} | {ms(result['drift_max'])} | {result['cores']:.3f} | "
            + (
                "- | - |"
                if name == "tower"
                else f"{ratio(tower['drift_p99'], result['drift_p99'])} "
                f"| {ratio(tower['cores'], result['cores'])} |"
            )
        )
    goal = tower["drift_p99"] < 1.0 and tower["cores"] < 0.5
    lines += [
        "",
        f"Goal (drift p99 < 1 s with < 0.5 core): **{'met' if goal else 'NOT met'}** "
        f"(tower: {ms(tower['drift_p99'])}, {tower['cores']:.3f} cores; "
        f"{tower['failed']} failed checks, {tower['skipped']} skipped beats).",
        "",
    ]
    per_monitor = sim["bytes_per_monitor"]
    rows = sim["rows"]
    count = sim["monitors"]
    everything = sim["keep_everything_bytes_per_monitor"]
    growth = ", ".join(
        f"day {day} {size / 1e6:.2f} MB" for day, size in sim["file_bytes_by_day"].items()
    )
    hour_days = sim["retention"]["hour"] / 86400
    day_days = sim["retention"]["day"] / 86400
    lines += [
        f"Store after {sim['days']} simulated days (the real write path and hourly pruning "
        f"with a fake clock, {count} monitors at 30 s, {sim['checks']:,} checks, default "
        f"retention): {per_monitor / 1024:.0f} KiB per monitor in results and rollups "
        f"({rows.get('monitor_results', 0) // count} raw results, "
        f"{rows.get('rollups_minute', 0) // count} minute, "
        f"{rows.get('rollups_hour', 0) // count} hour and "
        f"{rows.get('rollups_day', 0) // count} day rollups each), so "
        f"**{per_monitor * args.monitors / 1e9:.2f} GB for {args.monitors:,} monitors**. "
        f"Keeping every raw result for {sim['days']} days instead would take "
        f"{everything * args.monitors / 1e9:.1f} GB ({everything / per_monitor:.0f}x more). "
        f"Raw results and minutes stop growing within hours; hour rollups grow until "
        f"{hour_days:.0f} days and day rollups until {day_days:.0f} days, so one monitor "
        f"stays under about {sim['bound_bytes_per_monitor'] / 1024:.0f} KiB "
        f"({sim['bound_bytes_per_monitor'] * args.monitors / 1e9:.2f} GB for "
        f"{args.monitors:,}). The sample's whole SQLite file as the days went: {growth}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--measure", type=float, default=60.0)
    parser.add_argument("--store-monitors", type=int, default=5)
    parser.add_argument(
        "--save", default="/tmp/tower-monitor-bench.json", help="where to keep the measurements"
    )
    parser.add_argument(
        "--render", default="", help="write the results of a saved run instead of measuring"
    )
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    for module in ("aiohttp",):
        try:
            __import__(module)
        except ImportError:
            raise SystemExit(f"missing {module}: pip install -e '.[bench]'") from None
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    started = time.monotonic()
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        args = argparse.Namespace(**{**vars(args), **saved["args"], "render": args.render})
        sides, sim = saved["sides"], saved["store"]
    else:
        with bench_lock():
            with target() as url:
                sides = {
                    "tower": side("tower", url, args, "tower"),
                    "naive httpx": side("naive httpx", url, args, "naive", "--client", "httpx"),
                    "naive aiohttp": side(
                        "naive aiohttp", url, args, "naive", "--client", "aiohttp"
                    ),
                }
            sim = store(args)
        kept = {k: v for k, v in vars(args).items() if k not in ("record", "render", "save")}
        Path(args.save).write_text(
            json.dumps({"args": kept, "sides": sides, "store": sim}, indent=1)
        )
        say(f"measurements saved in {args.save}")
    text = markdown(args, sides, sim)
    say("")
    say(text)
    say(f"\n(done in {time.monotonic() - started:.0f}s)")
    if args.record:
        record("monitor", text)
        say("recorded in benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
