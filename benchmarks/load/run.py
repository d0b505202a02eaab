"""tower load vs Locust (FastHttpUser) vs wrk, in one run against the same local target.

    python -m benchmarks.load.run [--seconds 10] [--out benchmarks/results/load.md]

1. Maximum rate, one generator process each, 32 connections/users, against a
   fast local target (no injected latency). Throughput per core = requests per
   second divided by the generator's measured CPU use (cores busy) in the same
   window, so a tool that finishes more work per CPU second scores higher.
2. A constant 1,000 req/s against a target with uniform 10-30 ms latency:
   tower's open model, a wrk2-style reference (below), Locust with
   ``constant_throughput`` and wrk paced with a Lua ``delay``. wrk2 is not
   packaged for Debian, so the reference is a deliberately simple re-statement
   of wrk2's algorithm: each of 50 keep-alive connections sends on its own fixed
   schedule (20 req/s each) and
   measures latency from the request's scheduled time (wrk2's corrected
   latency), in one thread with ``selectors`` (wrk2 uses epoll). Locust and paced wrk are closed loops: their figures are shown for
   context, not as the reference.
3. Accuracy: tower at 150 req/s against uniform 10-30 ms, percentiles against the
   delays the server itself applied.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CONNECTIONS = 32
RATE = 1000
REFERENCE_CONNECTIONS = 50

LOCUSTFILE = """
from locust import FastHttpUser, task, constant, constant_throughput
import os

PACE = float(os.environ.get("BENCH_PACE", "0"))


class Visitor(FastHttpUser):
    wait_time = constant_throughput(PACE) if PACE else constant(0)

    @task
    def root(self):
        self.client.get("/")
"""

WRK_DELAY = """
function delay()
  return {delay}
end
"""


@dataclass
class Figures:
    tool: str
    rps: float
    cpu: float = 0.0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    note: str = ""

    @property
    def per_core(self) -> float:
        return self.rps / self.cpu if self.cpu > 0 else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(port)


def start_target(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "controltower.load.target", "--port", str(port), "--uvloop", *args]
    )
    wait_port(port)
    return process, f"http://127.0.0.1:{port}"


class CpuWindow:
    """CPU seconds used by a process tree between ``warmup`` and ``warmup + seconds``."""

    def __init__(self, process: subprocess.Popen[bytes], warmup: float, seconds: float) -> None:
        self.pid = process.pid
        self.warmup = warmup
        self.seconds = seconds
        self.busy = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _tree_cpu(self) -> float:
        try:
            root = psutil.Process(self.pid)
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    pass
            return total
        except psutil.Error:
            return 0.0

    def _run(self) -> None:
        time.sleep(self.warmup)
        before, start = self._tree_cpu(), time.monotonic()
        time.sleep(self.seconds)
        after, end = self._tree_cpu(), time.monotonic()
        self.busy = (after - before) / (end - start)

    def result(self) -> float:
        self.thread.join()
        return self.busy


def run_tower(url: str, seconds: float, *args: str) -> tuple[dict[str, object], float]:
    command = [PYTHON, "-m", "controltower", "load", "--url", url, "--duration", f"{seconds}s"]
    command += ["--workers", "1", "--no-store", "--format", "json", *args]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "tower.toml").write_text('[service]\nname = "bench"\n')
        process = subprocess.Popen(
            command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        window = CpuWindow(process, 2.0, max(1.0, seconds - 3.0))
        stdout, _ = process.communicate()
    return json.loads(stdout), window.result()


def tower_figures(report: dict[str, object], cpu: float, tool: str) -> Figures:
    summary = report["summary"]
    assert isinstance(summary, dict)
    generator = report["generator"]
    assert isinstance(generator, dict)
    note = "generator-bound" if generator["bound"] else ""
    return Figures(
        tool,
        float(summary["rps"]),
        cpu,
        float(summary["p50"]),
        float(summary["p90"]),
        float(summary["p99"]),
        float(summary["max"]),
        note,
    )


def run_locust(url: str, seconds: float, users: int, pace: float) -> Figures:
    with tempfile.TemporaryDirectory() as folder:
        locustfile = Path(folder) / "locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        prefix = Path(folder) / "stats"
        command = [PYTHON, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary"]
        command += ["-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s", "--host", url]
        command += ["--csv", str(prefix), "--loglevel", "ERROR"]
        process = subprocess.Popen(
            command,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "BENCH_PACE": str(pace)},
        )
        window = CpuWindow(process, 3.0, max(1.0, seconds - 4.0))
        process.wait()
        with open(f"{prefix}_stats.csv", newline="") as handle:
            row = next(item for item in csv.DictReader(handle) if item["Name"] == "Aggregated")
    return Figures(
        "Locust FastHttpUser",
        float(row["Requests/s"]),
        window.result(),
        float(row["50%"]) / 1000,
        float(row["90%"]) / 1000,
        float(row["99%"]) / 1000,
        float(row["Max Response Time"]) / 1000,
    )


def _wrk_seconds(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    assert match, text
    return float(match.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(2)]


def run_wrk(url: str, seconds: float, connections: int, delay_ms: float = 0.0) -> Figures:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency"]
    with tempfile.TemporaryDirectory() as folder:
        if delay_ms:
            script = Path(folder) / "pace.lua"
            script.write_text(WRK_DELAY.format(delay=delay_ms))
            command += ["-s", str(script)]
        process = subprocess.Popen(
            [*command, f"{url}/"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        window = CpuWindow(process, 2.0, max(1.0, seconds - 3.0))
        stdout, _ = process.communicate()
    text = stdout.decode()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    found = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", text, re.MULTILINE))
    latency_max = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", text)
    return Figures(
        "wrk" + (" (paced, closed loop)" if delay_ms else ""),
        rps,
        window.result(),
        _wrk_seconds(found["50"]),
        _wrk_seconds(found["90"]),
        _wrk_seconds(found["99"]),
        _wrk_seconds(latency_max.group(1)) if latency_max else 0.0,
    )


def run_reference(url: str, seconds: float, rate: float, connections: int) -> Figures:
    """wrk2's algorithm: per-connection fixed schedule, latency from the scheduled time.

    One thread, non-blocking sockets and ``selectors`` (as wrk2 uses epoll): a
    connection sends its next request when it is due and idle; latency runs from
    the due time, so a late answer also delays (and is charged to) the next one.
    """
    host, port = url.removeprefix("http://").split(":")
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    period = connections / rate
    histogram = HdrHistogram(1, 60_000_000, 3)
    selector = selectors.DefaultSelector()
    sockets = []
    for _ in range(connections):
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sockets.append(sock)
    start = time.monotonic() + 0.1
    end = start + seconds
    due = [start + index / rate for index in range(connections)]
    busy = [False] * connections
    buffers = [b""] * connections
    for index, sock in enumerate(sockets):
        selector.register(sock, selectors.EVENT_READ, index)
    while True:
        now = time.monotonic()
        for index in range(connections):
            if not busy[index] and due[index] <= now and due[index] < end:
                sockets[index].send(request)
                busy[index] = True
        if not any(busy) and min(due) >= end:
            break
        waiting = [due[i] for i in range(connections) if not busy[i] and due[i] < end]
        timeout = max(0.0, min(waiting) - time.monotonic()) if waiting else 0.05
        for key, _ in selector.select(timeout):
            index = key.data
            buffers[index] += sockets[index].recv(65536)
            head_end = buffers[index].find(b"\r\n\r\n")
            if head_end < 0:
                continue
            found = re.search(rb"(?i)content-length:\s*(\d+)", buffers[index][:head_end])
            length = int(found.group(1)) if found else 0
            if len(buffers[index]) < head_end + 4 + length:
                continue
            buffers[index] = buffers[index][head_end + 4 + length :]
            histogram.record_value(max(1, int((time.monotonic() - due[index]) * 1e6)))
            busy[index] = False
            due[index] += period
    for sock in sockets:
        selector.unregister(sock)
        sock.close()

    def at(percent: float) -> float:
        return float(histogram.get_value_at_percentile(percent)) / 1e6

    return Figures(
        "wrk2-style reference",
        histogram.get_total_count() / seconds,
        0.0,
        at(50),
        at(90),
        at(99),
        histogram.get_max_value() / 1e6,
    )


def accuracy(seconds: float) -> list[tuple[str, float, float, bool]]:
    process, url = start_target("--latency", "uniform:10ms:30ms")
    try:
        report, _ = run_tower(url, seconds, "--rate", "150")
        with urllib.request.urlopen(f"{url}/__delays") as response:
            applied = sorted(json.loads(response.read()))
    finally:
        process.terminate()
        process.wait()
    summary = report["summary"]
    assert isinstance(summary, dict)
    rows = []
    for name, percent in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        injected = applied[min(len(applied) - 1, round(percent / 100 * len(applied)) - 1)]
        measured = float(summary[name])
        rows.append((name, injected, measured, abs(measured - injected) <= 0.001 + 0.02 * injected))
    return rows


def _ms(value: float) -> str:
    return f"{value * 1000:.2f}"


def table(rows: list[Figures], *, per_core: bool) -> list[str]:
    head = "| tool | req/s | generator CPU (cores) | req/s per core | p50 ms | p90 ms | p99 ms | max ms | note |"
    lines = [head, "|" + "---|" * 9]
    for row in rows:
        lines.append(
            f"| {row.tool} | {row.rps:,.0f} | {row.cpu:.2f} | "
            f"{row.per_core:,.0f} | {_ms(row.p50)} | {_ms(row.p90)} | {_ms(row.p99)} | "
            f"{_ms(row.max)} | {row.note} |"
            if per_core
            else f"| {row.tool} | {row.rps:,.0f} | {row.cpu:.2f} | - | {_ms(row.p50)} | "
            f"{_ms(row.p90)} | {_ms(row.p99)} | {_ms(row.max)} | {row.note} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    seconds = args.seconds

    print("1/3 maximum rate against a fast local target ...", flush=True)
    process, url = start_target()
    try:
        report, cpu = run_tower(url, seconds, "--users", str(CONNECTIONS))
        tower_max = tower_figures(report, cpu, "tower load (closed, 1 worker)")
        locust_max = run_locust(url, seconds, CONNECTIONS, 0.0)
        wrk_max = run_wrk(url, seconds, CONNECTIONS)
    finally:
        process.terminate()
        process.wait()
    maximum = [tower_max, locust_max, wrk_max]

    print("2/3 constant 1,000 req/s against uniform 10-30 ms ...", flush=True)
    process, url = start_target("--latency", "uniform:10ms:30ms")
    try:
        report, cpu = run_tower(url, seconds, "--rate", str(RATE), "--connections", "64")
        tower_rate = tower_figures(report, cpu, "tower load (open, 1 worker)")
        reference = run_reference(url, seconds, RATE, REFERENCE_CONNECTIONS)
        locust_rate = run_locust(url, seconds, REFERENCE_CONNECTIONS, RATE / REFERENCE_CONNECTIONS)
        wrk_rate = run_wrk(url, seconds, REFERENCE_CONNECTIONS, delay_ms=30.0)
    finally:
        process.terminate()
        process.wait()
    constant = [tower_rate, reference, locust_rate, wrk_rate]

    print("3/3 accuracy against the delays the server applied ...", flush=True)
    checks = accuracy(min(seconds, 6.0))

    per_core_ratio = tower_max.per_core / locust_max.per_core if locust_max.per_core else 0.0
    wrk_ratio = tower_max.per_core / wrk_max.per_core if wrk_max.per_core else 0.0
    deviations = {
        name: (getattr(tower_rate, name) - getattr(reference, name)) / getattr(reference, name)
        for name in ("p50", "p90", "p99")
    }
    lines = [
        "# Load generator benchmark",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        "other work running on the machine at the same time (figures are noisy).",
        "Command: `python -m benchmarks.load.run"
        + (f" --seconds {seconds:g}" if seconds != 10 else "")
        + "`. Target: `controltower.load.target` (asyncio + uvloop, one process).",
        "",
        f"## Maximum rate ({CONNECTIONS} connections/users, one generator process, {seconds:g}s)",
        "",
        *table(maximum, per_core=True),
        "",
        f"- tower / Locust FastHttpUser, requests per second per core: **{per_core_ratio:.2f}x**",
        f"- tower / wrk, requests per second per core: **{wrk_ratio:.2f}x**",
        "",
        f"## Constant {RATE:,} req/s (target latency uniform 10-30 ms, {seconds:g}s)",
        "",
        *table(constant, per_core=False),
        "",
        "- tower vs the wrk2-style reference: "
        + ", ".join(f"{name} {value:+.1%}" for name, value in deviations.items()),
        "- Locust and paced wrk wait for each answer before the next request (closed loop),",
        "  so they are not a constant-rate reference; they are shown for context.",
        "",
        "## Accuracy (tower at 150 req/s vs the delays the target applied)",
        "",
        "| percentile | applied ms | tower ms | within 1 ms + 2% |",
        "|---|---|---|---|",
        *(
            f"| {name} | {_ms(injected)} | {_ms(measured)} | {'yes' if ok else 'NO'} |"
            for name, injected, measured, ok in checks
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
