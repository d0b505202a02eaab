"""tower's proxy against HAProxy and against no proxy: throughput, added latency, weight changes.

    python -m benchmarks.deploy.proxy [--seconds 8] [--connections 32] [--rounds 3] [--record]

The same two instances of the example app (examples/app under uvicorn, one
process each, started by tower's local driver) are reached three ways, with the
same 50/50 split:

- direct: the load's connections spread evenly over the two instances;
- tower: the local driver's agent, its proxy on uvloop, routes {a: 0.5, b: 0.5};
- HAProxy (Debian's ``haproxy``): one thread (tower's proxy is one thread too),
  ``balance random`` over the two servers at weight 50, keep-alive both sides.

For each, in turns over ``--rounds`` rounds (the median is reported):

1. throughput: a closed loop of ``--connections`` keep-alive connections for
   ``--seconds`` (tower's own HTTP client on uvloop, in its own process), GET /;
2. latency: one connection, one request at a time, for half as long: p50 and
   p99, and what each proxy adds to direct's;
3. CPU of the proxy process per request (its user + system time over the
   throughput run, from /proc).

Then the time a weight change takes to apply, five times each: under a
constant 200 requests/s, traffic is moved from 50/50 to all on b (tower: the
engine's ``route`` call on the agent's control channel; HAProxy: ``set weight``
on its runtime API socket). Apply time = from the command until the last
request sent that still reached a (or the command's own duration, if longer).

The run holds ``/tmp/tower-bench.lock``; the goal is tower >= 0.8x direct.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import EXAMPLE_APP, free_port, wait_for_port
from tests.deploy_load import Load

from benchmarks.deploy.run import bench_lock, progress
from benchmarks.record import record
from controltower.deploy.drivers.base import ReleaseInfo
from controltower.deploy.drivers.local import LocalDriver
from controltower.spec.deploy import LocalDriverSpec

GOAL = 0.8
SYSTEMS = ("direct", "tower", "haproxy")
APP = (
    "{python} -m uvicorn app:app --host 127.0.0.1 --port {port} "
    "--no-access-log --no-server-header --log-level warning"
)


# ---- the load: a closed loop in its own process ------------------------------------------


async def _drive(urls: list[str], connections: int, seconds: float) -> dict[str, object]:
    from controltower.load.client import Connection, Target, build_request

    targets = [Target.from_url(url) for url in urls]
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def one(index: int) -> None:
        nonlocal errors
        target = targets[index % len(targets)]
        payload = build_request(target, "GET", "/", {}, b"")
        connection = Connection(target, timeout=10.0, ssl_context=None)
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                response = await connection.request(payload)
            except (OSError, TimeoutError, Exception):
                errors += 1
                connection.close()
                continue
            if response.status != 200:
                errors += 1
            latencies.append(time.perf_counter() - started)
        connection.close()

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(connections)))
    took = time.monotonic() - began
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": took,
        "rps": len(latencies) / took,
        "p50": quantile(0.50),
        "p99": quantile(0.99),
    }


def drive(urls: list[str], connections: int, seconds: float) -> dict[str, float]:
    """Run the closed loop in a child process (so it does not share the proxy's loop)."""
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.deploy.proxy",
            "drive",
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
            *urls,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds * 4 + 60,
    ).stdout
    found: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the systems ------------------------------------------------------------------------


class Tower:
    """The local driver's agent with two instances of the example app, split 50/50."""

    def __init__(self, root: Path) -> None:
        spec = LocalDriverSpec(
            command=APP,
            cwd=str(EXAMPLE_APP),
            proxy_port=free_port(),
            state_dir=str(root / "local"),
            env={"APP_VERSION": "{version}", "APP_DATABASE": str(root / "app.db")},
        )
        self.driver = LocalDriver(spec, root=root, service="bench", health_path="/api/health")
        self.driver.prepare()
        for name in ("a", "b"):
            self.driver.start(ReleaseInfo(id=name, version=name), 1)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            running = [i for i in self.driver.instances() if i.state == "running"]
            if len(running) == 2:
                break
            time.sleep(0.2)
        else:
            raise SystemExit("the example app did not start under the local driver")
        self.route({"a": 0.5, "b": 0.5})
        self.url = self.driver.public_url()
        self.addresses = {i.release: i.address for i in self.driver.instances()}
        self.pid = int(json.loads((root / "local" / "agent.json").read_text())["pid"])

    def route(self, weights: dict[str, float]) -> None:
        self.driver.route(weights)

    def close(self) -> None:
        pids = [int(i.detail.get("pid") or 0) for i in self.driver.instances()]
        self.driver.agent.shutdown(wait=20)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, 9)
        self.driver.close()


HAPROXY_CONFIG = """\
global
    nbthread 1
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always

frontend web
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance random
    http-response set-header x-tower-release %[srv_name]
    server a {a} weight 50
    server b {b} weight 50
"""


class HAProxy:
    """Debian's haproxy in the foreground, same two instances, same split."""

    def __init__(self, root: Path, addresses: dict[str, str]) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise SystemExit("haproxy is not installed: apt-get install haproxy")
        self.port = free_port()
        self.socket = root / "haproxy.sock"
        config = root / "haproxy.cfg"
        config.write_text(
            HAPROXY_CONFIG.format(
                socket=self.socket, port=self.port, a=addresses["a"], b=addresses["b"]
            )
        )
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(self.port, 20)
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid = self.process.pid
        self.version = subprocess.run(
            [binary, "-v"], capture_output=True, text=True
        ).stdout.splitlines()[0]

    def command(self, text: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket))
            sock.sendall(text.encode() + b"\n")
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()

    def route(self, weights: dict[str, float]) -> None:
        self.command(
            "; ".join(
                f"set weight app/{name} {round(weights.get(name, 0) * 100)}" for name in ("a", "b")
            )
        )

    def close(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


# ---- measurements -----------------------------------------------------------------------


@dataclass
class Figures:
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    apply_ms: list[float] = field(default_factory=list)
    command_ms: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else 0.0


def weight_change(url: str, route: Callable[[dict[str, float]], None]) -> tuple[float, float]:
    """Seconds until traffic left ``a`` after a route to all-b, and the command's own time."""
    route({"a": 0.5, "b": 0.5})
    load = Load(url, rate=200, timeout=10.0).start()
    try:
        time.sleep(1.0)
        switched_at = load.mark()
        base = time.monotonic()
        route({"b": 1.0})
        command = time.monotonic() - base
        time.sleep(1.0)
    finally:
        result = load.stop()
        route({"a": 0.5, "b": 0.5})
    late = [at for at, release, ok in result.timeline if release == "a" and at >= switched_at]
    apply = max([command, *[at - switched_at for at in late]])
    return apply, command


def measure(seconds: float, connections: int, rounds: int) -> tuple[dict[str, Figures], str]:
    found = {name: Figures() for name in SYSTEMS}
    with tempfile.TemporaryDirectory(prefix="tower-proxy-bench-") as tmp:
        root = Path(tmp)
        progress("starting two instances of the example app under tower's local driver")
        tower = Tower(root)
        haproxy = None
        try:
            haproxy = HAProxy(root, tower.addresses)
            urls = {
                "direct": [f"http://{tower.addresses['a']}", f"http://{tower.addresses['b']}"],
                "tower": [tower.url],
                "haproxy": [haproxy.url],
            }
            pids = {"tower": tower.pid, "haproxy": haproxy.pid}
            for name in SYSTEMS:  # warm every path once
                drive(urls[name], connections, 1.0)
            for round_ in range(rounds):
                for name in SYSTEMS:
                    progress(f"{name}: throughput, {connections} connections (round {round_ + 1})")
                    pid = pids.get(name)
                    before = cpu_seconds(pid) if pid else 0.0
                    run = drive(urls[name], connections, seconds)
                    figures = found[name]
                    figures.rps.append(run["rps"])
                    figures.errors += int(run["errors"])
                    figures.requests += int(run["requests"])
                    if pid:
                        figures.cpu_us.append((cpu_seconds(pid) - before) / run["requests"] * 1e6)
                    progress(f"{name}: {run['rps']:.0f} requests/s; latency, one connection")
                    single = drive(urls[name], 1, seconds / 2)
                    figures.p50.append(single["p50"])
                    figures.p99.append(single["p99"])
            for name, system in (("tower", tower), ("haproxy", haproxy)):
                for attempt in range(5):
                    progress(f"{name}: weight change {attempt + 1} of 5")
                    apply, command = weight_change(system.url, system.route)
                    found[name].apply_ms.append(apply * 1000)
                    found[name].command_ms.append(command * 1000)
            version = haproxy.version
        finally:
            if haproxy is not None:
                haproxy.close()
            tower.close()
    return found, version


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def report(
    found: dict[str, Figures], version: str, seconds: float, connections: int, rounds: int
) -> str:
    direct = found["direct"]
    lines = [
        f"The example app (two uvicorn processes, started by tower's local driver), split "
        f"50/50, reached directly, through tower's proxy (the local driver's agent, uvloop) "
        f"and through HAProxy ({version}; one thread, as tower's proxy has one), in turns on "
        f"the same machine, median of {rounds} round(s). Throughput: {connections} keep-alive "
        f"connections in a closed loop for {seconds:g} s (tower's HTTP client in its own "
        f"process), `GET /`. Latency: one connection, one request at a time. Command: "
        f"`python -m benchmarks.deploy.proxy --record`.",
        "",
        "| path | requests/s | vs direct | latency p50 | added p50 | latency p99 "
        "| proxy CPU per request | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in SYSTEMS:
        figures = found[name]
        ratio = figures.median("rps") / direct.median("rps") if direct.rps else 0.0
        added = figures.median("p50") - direct.median("p50")
        cpu = f"{figures.median('cpu_us'):.0f} µs" if figures.cpu_us else "-"
        lines.append(
            f"| {name} | {figures.median('rps'):,.0f} | {ratio:.2f}x "
            f"| {ms(figures.median('p50'))} | {'-' if name == 'direct' else ms(added)} "
            f"| {ms(figures.median('p99'))} | {cpu} | {figures.errors} of {figures.requests} |"
        )
    tower, haproxy = found["tower"], found["haproxy"]
    lines += [
        "",
        "| weight change (50/50 to all on b, under 200 requests/s) | tower | HAProxy |",
        "| --- | ---: | ---: |",
        f"| command (route call / runtime API `set weight`) | "
        f"{tower.median('command_ms'):.1f} ms | {haproxy.median('command_ms'):.1f} ms |",
        f"| until no new request reaches a (median of 5) | "
        f"{tower.median('apply_ms'):.1f} ms | {haproxy.median('apply_ms'):.1f} ms |",
        "",
    ]
    ratio = tower.median("rps") / direct.median("rps") if direct.rps else 0.0
    gap = tower.median("rps") / haproxy.median("rps") if haproxy.rps else 0.0
    haproxy_ratio = haproxy.median("rps") / direct.median("rps") if direct.rps else 0.0
    costs = (
        f"tower's proxy spends {tower.median('cpu_us'):.0f} µs of CPU per request (Python on "
        f"uvloop, httptools), HAProxy {haproxy.median('cpu_us'):.0f} µs"
    )
    if ratio >= GOAL:
        verdict = f"**met** ({ratio:.2f}x)"
    else:
        verdict = (
            f"**not met** ({ratio:.2f}x). The measured reason: a proxy's CPU comes out of the "
            f"same 2 cores the two app processes and the load generator use, so every µs it "
            f"spends per request is taken from the app; {costs}, and HAProxy itself reaches "
            f"{haproxy_ratio:.2f}x direct here"
        )
    lines.append(
        f"Goal (tower's proxy >= {GOAL}x direct throughput): {verdict}. "
        f"Gap to HAProxy: tower's proxy moves {gap:.2f}x HAProxy's requests/s."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deploy.proxy")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    with bench_lock():
        found, version = measure(args.seconds, args.connections, args.rounds)
    text = report(found, version, args.seconds, args.connections, args.rounds)
    print(text)
    if args.record:
        record("proxy", text)
    return 0


def drive_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deploy.proxy drive")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    import uvloop

    result = uvloop.run(_drive(args.urls, args.connections, args.seconds))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["drive"]:
        sys.exit(drive_main(sys.argv[2:]))
    sys.exit(main())
