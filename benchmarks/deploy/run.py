"""Deploys under load: switch time, rollback time and failed requests per strategy.

    python -m benchmarks.deploy.run [--rate 200] [--rounds 2] [--record]

The example app (examples/app) runs on the local driver, two instances behind
tower's proxy, while a constant-rate load (default 200 requests/s, open model:
a slow answer does not slow the sender) records who answered each request.

1. A good release with each strategy: how long the deploy took, how long old
   and new both answered (the switch window; an atomic switch shows as ~0), the
   latency of the switch itself (the route call), and the failed requests.
2. A bad release (5xx on 20% of requests) as a canary: how long it took traffic
   (exposure) and the share of all requests that failed.
3. ``tower rollback`` to a release kept warm by blue-green: time to restore.
4. ``tower rollback`` after an immediate deploy, nothing warm: the previous
   release's artifact (its snapshot) is started, gated and switched to.

The peer, measured in the same run on the same app and load, is what a plain
deploy script does: stop the running process, start the new one on the same
port. Its downtime and failed requests, for a deploy and for a rollback, are
set against tower's. The run holds ``/tmp/tower-bench.lock``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import EXAMPLE_APP, free_port, wait_for_port
from tests.deploy_load import Load, LoadResult
from tests.deploy_support import LocalSite

from benchmarks.record import record
from controltower.deploy import ReleaseView
from controltower.spec.deploy import Strategy

LOCK = "/tmp/tower-bench.lock"
STRATEGIES = (Strategy.IMMEDIATE, Strategy.ROLLING, Strategy.BLUEGREEN, Strategy.CANARY)
INTERVAL = "4s"


@dataclass
class Measure:
    name: str
    seconds: float  # deploy duration, or time to restore
    window: float  # old and new both answering (switch), or bad release exposed
    switch_ms: float  # the atomic route call
    failed: int
    sent: int
    ok: bool = True
    gap: float = 0.0  # from the first to the last failed request

    @property
    def ratio(self) -> float:
        return self.failed / self.sent if self.sent else 0.0


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    with open(LOCK, "w") as handle:
        progress(f"waiting for {LOCK}")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def overlap(result: LoadResult, old: str, new: str) -> float:
    """Seconds during which both releases answered (0 when the switch was atomic)."""
    new_times = [at for at, release, _ in result.timeline if release == new]
    old_times = [at for at, release, _ in result.timeline if release == old]
    if not new_times or not old_times:
        return 0.0
    return max(0.0, max(old_times) - min(new_times))


def exposure(result: LoadResult, release: str) -> float:
    times = [at for at, r, _ in result.timeline if r == release]
    return max(times) - min(times) if times else 0.0


def route_ms(site: LocalSite, release: ReleaseView) -> float:
    """The longest route call of the deploy, from its step log."""
    steps = site.engine().show(release.id).steps
    longest = 0.0
    for index, step in enumerate(steps):
        if step.state.startswith("route:") and index + 1 < len(steps):
            longest = max(longest, (steps[index + 1].at - step.at).total_seconds())
    return longest * 1000


def under_load(site: LocalSite, rate: float, action: object) -> tuple[object, LoadResult]:
    load = Load(site.url, rate=rate, timeout=10.0).start()
    try:
        time.sleep(1.0)
        outcome = action()  # type: ignore[operator]
        time.sleep(1.0)
    finally:
        result = load.stop()
    return outcome, result


def tower_deploys(rate: float, rounds: int, root: Path) -> dict[str, list[Measure]]:
    site = LocalSite(root / "tower")
    site.write(instances=2, steps=[("5%", INTERVAL)], interval=INTERVAL, warm_window="1h")
    found: dict[str, list[Measure]] = {}
    try:
        first = site.engine().deploy(version="1.0")
        assert first.status == "succeeded", first.reason
        version = 1
        for round_ in range(rounds):
            for strategy in STRATEGIES:
                version += 1
                progress(f"tower {strategy.value} deploy of {version}.0 (round {round_ + 1})")
                before = site.engine().current()
                assert before is not None
                release, result = under_load(
                    site,
                    rate,
                    lambda s=strategy, v=version: site.engine().deploy(
                        version=f"{v}.0", strategy=s
                    ),
                )
                assert isinstance(release, ReleaseView)
                found.setdefault(strategy.value, []).append(
                    Measure(
                        strategy.value,
                        release.duration or 0.0,
                        overlap(result, before.id, release.id),
                        route_ms(site, release),
                        result.failed,
                        result.sent,
                        release.status == "succeeded",
                        downtime(result),
                    )
                )
            version += 1
            progress(f"tower canary of a release with 5xx on 20% (round {round_ + 1})")
            release, result = under_load(
                site,
                rate,
                lambda v=version: site.engine().deploy(
                    version=f"{v}.0-bad", env={"APP_ERROR_RATE": "0.2"}, strategy=Strategy.CANARY
                ),
            )
            assert isinstance(release, ReleaseView)
            steps = site.engine().show(release.id).steps
            routed = next((s.at for s in steps if s.state == "route"), release.created_at)
            restored = next(
                (
                    s.at
                    for s in steps
                    if s.state == "rolling_back" and s.message.startswith("traffic")
                ),
                release.finished_at or release.created_at,
            )
            found.setdefault("bad canary", []).append(
                Measure(
                    "bad canary",
                    (restored - routed).total_seconds(),
                    exposure(result, release.id),
                    route_ms(site, release),
                    result.failed,
                    result.sent,
                    release.status == "rolled_back",
                )
            )
            version += 1
            progress(f"tower rollback to the warm blue release (round {round_ + 1})")
            blue = site.engine().current()
            assert blue is not None
            green, _ = under_load(
                site,
                rate,
                lambda v=version: site.engine().deploy(
                    version=f"{v}.0", strategy=Strategy.BLUEGREEN
                ),
            )
            assert isinstance(green, ReleaseView) and green.status == "succeeded", green
            back, result = under_load(site, rate, lambda: site.engine().rollback())
            assert isinstance(back, ReleaseView)
            switched = next(
                (s.at for s in site.engine().show(back.id).steps if s.state == "route"),
                back.finished_at or back.created_at,
            )
            found.setdefault("rollback", []).append(
                Measure(
                    "rollback",
                    (switched - back.created_at).total_seconds(),
                    overlap(result, green.id, blue.id),
                    route_ms(site, back),
                    result.failed,
                    result.sent,
                    back.status == "succeeded",
                    downtime(result),
                )
            )
            version += 1
            progress(f"tower rollback to the previous artifact, nothing warm (round {round_ + 1})")
            previous = site.engine().current()
            assert previous is not None
            latest, _ = under_load(
                site,
                rate,
                lambda v=version: site.engine().deploy(
                    version=f"{v}.0", strategy=Strategy.IMMEDIATE
                ),
            )
            assert isinstance(latest, ReleaseView) and latest.status == "succeeded", latest
            back, result = under_load(site, rate, lambda: site.engine().rollback())
            assert isinstance(back, ReleaseView)
            assert back.artifact_digest == previous.artifact_digest, back
            switched = next(
                (s.at for s in site.engine().show(back.id).steps if s.state == "route"),
                back.finished_at or back.created_at,
            )
            found.setdefault("artifact rollback", []).append(
                Measure(
                    "artifact rollback",
                    (switched - back.created_at).total_seconds(),
                    overlap(result, latest.id, back.id),
                    route_ms(site, back),
                    result.failed,
                    result.sent,
                    back.status == "succeeded",
                    downtime(result),
                )
            )
    finally:
        site.close()
    return found


class Naive:
    """A plain deploy script: stop the process on the port, start the new one there."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, version: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=EXAMPLE_APP,
            env={
                **os.environ,
                "APP_VERSION": version,
                "APP_DATABASE": str(self.root / "naive.db"),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 60)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)

    def redeploy(self, version: str) -> float:
        started = time.monotonic()
        self.stop()
        self.start(version)
        return time.monotonic() - started


def downtime(result: LoadResult) -> float:
    """The longest stretch between two requests that were both sent and failed."""
    failed = [at for at, _, ok in result.timeline if not ok]
    if not failed:
        return 0.0
    return max(failed) - min(failed)


def naive_deploys(rate: float, rounds: int, root: Path) -> dict[str, list[Measure]]:
    naive = Naive(root)
    found: dict[str, list[Measure]] = {}
    try:
        naive.start("1.0")
        for round_ in range(rounds):
            for name, version in (("deploy", "2.0"), ("rollback", "1.0")):
                progress(f"naive stop-then-start {name} (round {round_ + 1})")
                load = Load(f"http://127.0.0.1:{naive.port}", rate=rate, timeout=10.0).start()
                try:
                    time.sleep(1.0)
                    took = naive.redeploy(version)
                    time.sleep(1.0)
                finally:
                    result = load.stop()
                found.setdefault(name, []).append(
                    Measure(
                        name, took, 0.0, 0.0, result.failed, result.sent, True, downtime(result)
                    )
                )
    finally:
        naive.stop()
    return found


def median(values: list[Measure], field: str) -> float:
    return statistics.median(getattr(m, field) for m in values)


def report(
    tower: dict[str, list[Measure]], naive: dict[str, list[Measure]], rate: float, rounds: int
) -> str:
    lines = [
        f"Example app (2 instances) on the local driver under a constant {rate:.0f} requests/s, "
        f"median of {rounds} round(s). Canary: one 5% step held for {INTERVAL}, "
        "analysis `error_rate < 2%`. Command: `python -m benchmarks.deploy.run --record`.",
        "",
        "| strategy | deploy time | old and new both answering | route call | failed requests |",
        "| --- | --- | --- | --- | --- |",
    ]
    for strategy in STRATEGIES:
        runs = tower[strategy.value]
        ok = "" if all(m.ok for m in runs) else " (did not succeed every time)"
        lines.append(
            f"| {strategy.value}{ok} | {median(runs, 'seconds'):.1f} s | {median(runs, 'window'):.2f} s "
            f"| {median(runs, 'switch_ms'):.0f} ms | {sum(m.failed for m in runs)} of "
            f"{sum(m.sent for m in runs)} |"
        )
    bad = tower["bad canary"]
    lines += [
        "",
        "| bad release (5xx on 20%), canary | value |",
        "| --- | --- |",
        f"| rolled back automatically | {sum(m.ok for m in bad)} of {len(bad)} |",
        f"| from first traffic to all traffic back on stable | {median(bad, 'seconds'):.1f} s "
        f"(analysis interval {INTERVAL}) |",
        f"| requests failed, of all sent | {sum(m.failed for m in bad)} of {sum(m.sent for m in bad)} "
        f"({100 * sum(m.failed for m in bad) / max(1, sum(m.sent for m in bad)):.2f}%) |",
    ]
    good = [m for strategy in STRATEGIES for m in tower[strategy.value]]
    worst_failed = max(m.failed for m in good)
    worst_gap = max(m.gap for m in good)
    rollback = tower["rollback"]
    artifact = tower["artifact rollback"]
    naive_deploy, naive_back = naive["deploy"], naive["rollback"]

    def ratio(ours: float, theirs: float) -> str:
        if ours <= 0:
            return "n/a: none with tower" if theirs > 0 else "equal"
        return f"{theirs / ours:.1f}x"

    lines += [
        "",
        "Against a plain stop-then-start script on the same app and load (same run):",
        "",
        "| | tower | stop-then-start | peer / tower |",
        "| --- | --- | --- | --- |",
        f"| deploy: failed requests (worst strategy) | {worst_failed} "
        f"| {median(naive_deploy, 'failed'):.0f} | {ratio(worst_failed, median(naive_deploy, 'failed'))} |",
        f"| deploy: time with failing requests (worst strategy) | {worst_gap:.2f} s "
        f"| {median(naive_deploy, 'gap'):.2f} s | {ratio(worst_gap, median(naive_deploy, 'gap'))} |",
        f"| rollback: time until traffic is back | {median(rollback, 'seconds'):.2f} s "
        f"| {median(naive_back, 'seconds'):.2f} s | {ratio(median(rollback, 'seconds'), median(naive_back, 'seconds'))} |",
        f"| rollback: failed requests | {median(rollback, 'failed'):.0f} "
        f"| {median(naive_back, 'failed'):.0f} | {ratio(median(rollback, 'failed'), median(naive_back, 'failed'))} |",
        f"| rollback to the previous artifact (nothing warm): time until traffic is back "
        f"| {median(artifact, 'seconds'):.2f} s | {median(naive_back, 'seconds'):.2f} s "
        f"| {ratio(median(artifact, 'seconds'), median(naive_back, 'seconds'))} |",
        f"| rollback to the previous artifact: failed requests | {median(artifact, 'failed'):.0f} "
        f"| {median(naive_back, 'failed'):.0f} "
        f"| {ratio(median(artifact, 'failed'), median(naive_back, 'failed'))} |",
        "",
        "tower's rollback goes back to the release blue-green kept warm: one health gate and "
        "one atomic switch, no process start. The script's rollback is another stop-then-start. "
        "After an immediate deploy nothing is warm: tower's rollback starts the previous "
        "release's snapshot (its artifact, not the working folder), gates its health, then "
        "switches; traffic stays on the current release until then.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (default 200)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds; medians are kept (default 2)"
    )
    parser.add_argument(
        "--record", action="store_true", help="write the deploy section of RESULTS.md"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups in finally
    with bench_lock(), tempfile.TemporaryDirectory(prefix="tower-bench-deploy-") as tmp:
        root = Path(tmp)
        (root / "tower").mkdir()
        started = time.monotonic()
        tower = tower_deploys(args.rate, args.rounds, root)
        naive = naive_deploys(args.rate, args.rounds, root)
        text = report(tower, naive, args.rate, args.rounds)
        progress(f"done in {time.monotonic() - started:.0f} s")
    print()
    print(text)
    if args.record:
        record("deploy", text)
        print("\nrecorded in benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
