"""Benchmark appkit readiness against a bare endpoint, fastapi-health and py-healthcheck.

    python -m benchmarks.appkit.run [--duration 5] [--rounds 2] [--pg URL] [--record]

One run, one machine, one uvicorn setup (1 worker, no access log): a FastAPI app
(benchmarks/appkit/server.py) serves a bare JSON endpoint and the same three
checks (TCP connect, HTTP GET to a local dependency, PostgreSQL SELECT 1)
through each library. wrk drives each endpoint in turn, interleaved over rounds;
the best round of each is kept.

1. Throughput with healthy dependencies: requests/s, and the ratio to the bare
   endpoint (a FastAPI route returning a dict) measured in the same run. A plain
   Starlette route returning fixed bytes is shown as a second, leaner baseline.
   Goal: appkit (checks cached) >= 0.9 of the bare endpoint.
2. A hanging dependency: the HTTP dependency accepts connections and never answers.
   Latency under load shows which endpoint stays bounded (appkit's check timeout is 1 s).

``--record`` writes the "appkit" section of benchmarks/RESULTS.md. Hold
``flock /tmp/tower-bench.lock`` around the run so benchmarks never overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = {
    "bare": "/bare",
    "bare-starlette": "/bare-starlette",
    "appkit": "/appkit",
    "fastapi-health": "/fastapi-health",
    "py-healthcheck": "/py-healthcheck",
}
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class WrkResult:
    rps: float
    p50: float
    p99: float
    max: float
    timeouts: int
    non_2xx: int
    requests: int


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    return float(match.group(1)) * UNITS[match.group(2)]


def wrk(url: str, duration: float, connections: int, timeout: float = 10.0) -> WrkResult:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(duration)}s",
            f"--timeout={round(timeout)}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    timeouts = re.search(r"timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = re.search(r"(\d+) requests in", out)
    return WrkResult(
        rps=rps,
        p50=_seconds(p50.group(1)) if p50 else float("nan"),
        p99=_seconds(p99.group(1)) if p99 else float("nan"),
        max=_seconds(latency.group(3)) if latency else float("nan"),
        timeouts=int(timeouts.group(1)) if timeouts else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        requests=int(requests.group(1)) if requests else 0,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float = 20.0) -> None:
    end, delay = time.monotonic() + deadline, 0.02
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    raise TimeoutError(f"nothing listens on port {port}")


def start_dependency() -> int:
    """A local HTTP/1.1 dependency answering 200 with keep-alive, in a background thread."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(
                    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    port = free_port()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port, backlog=512))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return port


def start_black_hole() -> int:
    """A listener that accepts connections and never answers: a hanging dependency."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            held.append(sock.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return int(sock.getsockname()[1])


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.appkit.server:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-server-header",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def warm(url: str) -> None:
    import httpx

    for path in ENDPOINTS.values():
        httpx.get(url + path, timeout=15)


HANG_PEERS = ("appkit", "fastapi-health", "py-healthcheck")
APPKIT_TIMEOUT = 1.0


def healthy_round_robin(
    url: str, duration: float, connections: int, rounds: int
) -> dict[str, WrkResult]:
    best: dict[str, WrkResult] = {}
    total = rounds * len(ENDPOINTS)
    done = 0
    names = list(ENDPOINTS)
    for round_number in range(1, rounds + 1):
        shift = (round_number - 1) % len(names)  # each round starts with another endpoint
        for name in names[shift:] + names[:shift]:
            path = ENDPOINTS[name]
            done += 1
            print(f"  [{done}/{total}] round {round_number}: {name}", flush=True)
            result = wrk(url + path, duration, connections)
            if name not in best or result.rps > best[name].rps:
                best[name] = result
    return {name: best[name] for name in names}


def markdown(
    best: dict[str, WrkResult],
    hanging: dict[str, WrkResult],
    args: argparse.Namespace,
    hang_duration: float,
) -> str:
    bare, lean = best["bare"].rps, best["bare-starlette"].rps
    ratio = best["appkit"].rps / bare
    bounded = {
        name: result.max <= APPKIT_TIMEOUT + 0.25 and result.timeouts == 0
        for name, result in hanging.items()
    }
    lines = [
        f"`flock /tmp/tower-bench.lock python -m benchmarks.appkit.run --record` "
        f"(wrk -t1 -c{args.connections}, {round(args.duration)} s per endpoint, best of "
        f"{args.rounds} interleaved rounds; one uvicorn worker; checks: TCP connect, HTTP GET, "
        "PostgreSQL `SELECT 1`).",
        "",
        "Healthy dependencies:",
        "",
        "| endpoint | req/s | vs bare | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    labels = {
        "bare": "bare JSON (FastAPI route)",
        "bare-starlette": "bare JSON (plain Starlette route)",
        "appkit": "appkit readiness, 3 checks cached",
        "fastapi-health": "fastapi-health, same 3 checks",
        "py-healthcheck": "py-healthcheck, same 3 checks (its cache on)",
    }
    for name, result in best.items():
        lines.append(
            f"| {labels[name]} | {result.rps:.0f} | {result.rps / bare:.2f} | "
            f"{result.p50 * 1000:.2f} | {result.p99 * 1000:.2f} |"
        )
    lines += [
        "",
        f"appkit cached / bare: **{ratio:.2f}** (goal >= 0.9: {'met' if ratio >= 0.9 else 'not met'}); "
        f"against the plain Starlette route: {best['appkit'].rps / lean:.2f}.",
        "",
        f"One dependency hanging (accepts the connection, never answers), {round(hang_duration)} s each:",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | max ms | bounded |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, result in hanging.items():
        lines.append(
            f"| {name} | {result.rps:.1f} | {result.p50 * 1000:.0f} | {result.p99 * 1000:.0f} | "
            f"{result.max * 1000:.0f} | {'yes' if bounded[name] else 'no'} |"
        )
    lines += [
        "",
        f"appkit answers 503 within its {APPKIT_TIMEOUT:.0f} s check timeout; fastapi-health waits "
        "for the check's own client (httpx's 5 s default, forever without one), py-healthcheck "
        "runs its checks one after another without a working timeout off the main thread.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per wrk run (default 5)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; the best is kept (default 3)"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "TOWER_TEST_POSTGRES_URL", "postgresql://tower:tower@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--record", action="store_true", help="write the appkit section of benchmarks/RESULTS.md"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")

    dependency = start_dependency()
    env = {
        "BENCH_TCP_PORT": str(dependency),
        "BENCH_HTTP_URL": f"http://127.0.0.1:{dependency}/status",
        "BENCH_PG_URL": args.pg,
    }

    print(
        f"== healthy dependencies: wrk -t1 -c{args.connections} -d{round(args.duration)}s, "
        f"best of {args.rounds} rounds",
        flush=True,
    )
    process, url = start_server(env)
    try:
        warm(url)
        best = healthy_round_robin(url, args.duration, args.connections, args.rounds)
    finally:
        stop(process)
    bare = best["bare"].rps
    print(f"{'endpoint':<16}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, result in best.items():
        print(
            f"{name:<16}{result.rps:>10.0f}{result.rps / bare:>8.2f}{result.p50 * 1000:>9.2f}"
            f"{result.p99 * 1000:>9.2f}{result.non_2xx:>9}"
        )

    hole = start_black_hole()
    hang_env = {**env, "BENCH_HTTP_URL": f"http://127.0.0.1:{hole}/status"}
    duration = max(args.duration, 8.0)
    print(
        f"\n== hanging HTTP dependency: wrk -t1 -c{args.connections} -d{round(duration)}s --timeout 10s",
        flush=True,
    )
    print("   (appkit timeout 1 s; the peers rely on the check's own client, httpx default 5 s)")
    process, url = start_server(hang_env)
    hanging: dict[str, WrkResult] = {}
    try:
        for name in HANG_PEERS:
            print(f"  {name}", flush=True)
            hanging[name] = wrk(url + ENDPOINTS[name], duration, args.connections)
    finally:
        stop(process)
    print(
        f"{'endpoint':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'timeouts':>9}{'503s':>7}"
    )
    for name, result in hanging.items():
        print(
            f"{name:<16}{result.rps:>10.1f}{result.p50 * 1000:>9.0f}{result.p99 * 1000:>9.0f}"
            f"{result.max * 1000:>9.0f}{result.timeouts:>9}{result.non_2xx:>7}"
        )
    text = markdown(best, hanging, args, duration)
    print("\n" + text)
    if args.record:
        from benchmarks.record import record

        record("appkit", text)
        print("\nrecorded in benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
