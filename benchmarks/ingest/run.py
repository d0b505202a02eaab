"""Sustained error ingestion: Sentry envelopes/s through ``tower serve`` into SQLite and PostgreSQL.

    python -m benchmarks.ingest.run [--duration 15] [--connections 32] [--pg URL] [--record]

For each store (a fresh SQLite file, a fresh PostgreSQL database), in one run:

- ``tower serve`` (one process, as shipped) receives envelopes from wrk, each one
  Python-SDK-sized error event (five kinds, so several issues) with its own event id,
  at ``/api/<project>/envelope/`` with the DSN key. Events/s is what was *stored*:
  every accepted event counted into the store, divided by the time from the first
  request until the last accepted event was written. "Lost" is accepted (the
  server's own counter) minus rows in ``error_events``, checked in the database.
- The baseline, ``benchmarks/ingest/baseline.py``, is the plainest Starlette
  endpoint on the same uvicorn: parse the envelope, one INSERT per event, commit,
  answer (GlitchTip-style synchronous writes), under the same load.

The ratio tower / baseline is reported per store. The goal for tower on
PostgreSQL is at least 2,000 events/s on the 2-core machine of the repository.
The run holds ``/tmp/tower-bench.lock`` so two benchmarks never overlap.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCK = Path("/tmp/tower-bench.lock")
KINDS = [
    ("ZeroDivisionError", "division by zero", "checkout"),
    ("KeyError", "'sku'", "add_to_cart"),
    ("ValueError", "invalid literal for int() with base 10: 'x'", "parse_quantity"),
    ("TimeoutError", "upstream payment API timed out", "charge"),
    ("AttributeError", "'NoneType' object has no attribute 'email'", "send_receipt"),
]
PLACEHOLDER = "EVENTIDEVENTIDEVENTIDEVENTIDEVEN"


def event_template(kind: str, value: str, function: str) -> str:
    """A Python SDK error event of a usual size (about 3 KB), its id a placeholder."""
    frames = [
        {
            "filename": f"shop/{name}.py",
            "abs_path": f"/app/shop/{name}.py",
            "module": f"shop.{name}",
            "function": fn,
            "lineno": 40 + index,
            "in_app": True,
            "pre_context": ["", f"def {fn}(request):", "    cart = load_cart(request)"],
            "context_line": "    total = compute(cart)",
            "post_context": ["    return render(total)", ""],
            "vars": {"request": "<WSGIRequest: POST '/cart'>", "cart": "{'items': 3}"},
        }
        for index, (name, fn) in enumerate(
            [("wsgi", "handle"), ("middleware", "dispatch"), ("views", "view"), ("cart", function)]
        )
    ]
    event = {
        "event_id": PLACEHOLDER,
        "timestamp": "2026-01-01T12:00:00Z",
        "platform": "python",
        "level": "error",
        "environment": "production",
        "release": "shop@1.5.0",
        "server_name": "web-1",
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": value,
                    "module": "builtins",
                    "mechanism": {"type": "django", "handled": False},
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "request": {
            "url": "https://shop.example/cart",
            "method": "POST",
            "headers": {"User-Agent": "Mozilla/5.0", "Cookie": "session=abc123"},
            "query_string": "coupon=SPRING",
        },
        "tags": {"route": "/cart", "region": "ams"},
        "contexts": {"runtime": {"name": "CPython", "version": "3.12.1"}},
        "breadcrumbs": {
            "values": [
                {"category": "query", "message": "SELECT * FROM carts WHERE id = %s"},
                {"category": "http", "data": {"url": "https://api.stripe.com/v1", "status": 200}},
            ]
        },
        "sdk": {"name": "sentry.python.django", "version": "2.19.0"},
    }
    return json.dumps(event, separators=(",", ":"))


def lua_script(path: str, key: str) -> str:
    """wrk's script: each request an envelope with a fresh random 32-hex event id."""
    templates = []
    for kind, value, function in KINDS:
        before, after = event_template(kind, value, function).split(PLACEHOLDER)
        templates.append(f"{{[==[{before}]==], [==[{after}]==]}}")
    return f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-sentry-envelope"
wrk.headers["X-Sentry-Auth"] = "Sentry sentry_key={key}, sentry_version=7, sentry_client=bench/1"
local templates = {{{", ".join(templates)}}}
local count = 0
function init(args)
  math.randomseed(os.time() * 1000 + os.clock() * 1000000)
end
local function hex16()
  return string.format("%04x%04x%04x%04x", math.random(0, 65535), math.random(0, 65535),
    math.random(0, 65535), math.random(0, 65535))
end
function request()
  count = count + 1
  local id = hex16() .. hex16()
  local t = templates[(count % #templates) + 1]
  local payload = t[1] .. id .. t[2]
  local body = '{{"event_id":"' .. id .. '"}}\\n{{"type":"event","length":' .. #payload .. '}}\\n'
    .. payload .. '\\n'
  return wrk.format(nil, "{path}", nil, body)
end
"""


@dataclass
class Wrk:
    requests: int
    non_2xx: int
    rps: float
    p50_ms: float
    p99_ms: float


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    return float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[match.group(2)]


def wrk(url: str, script: Path, duration: float, connections: int) -> Wrk:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(duration)}s",
            "--timeout=30s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def find(pattern: str, default: str = "0") -> str:
        match = re.search(pattern, out)
        return match.group(1) if match else default

    return Wrk(
        requests=int(find(r"(\d+) requests in")),
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)")),
        rps=float(find(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(find(r"50%\s+(\S+)", "nan")),
        p99_ms=_ms(find(r"99%\s+(\S+)", "nan")),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    delay = 0.05
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise SystemExit(f"{what} did not listen on {port}")


@contextlib.contextmanager
def database(kind: str, pg_admin: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database of ``kind``; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    import psycopg

    name = f"tower_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count_rows(url: str, table: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
    finally:
        engine.dispose()


def metric(url: str, name: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    system: str
    store: str
    sent: int
    accepted: int
    refused: int
    stored: int
    events_per_s: float
    accept_rps: float
    p50_ms: float
    p99_ms: float
    seconds: float
    cpu_us: float

    @classmethod
    def measured(
        cls,
        system: str,
        url: str,
        result: Wrk,
        *,
        accepted: int,
        stored: int,
        seconds: float,
        cpu: float,
    ) -> Outcome:
        """One system's figures from its wrk run, the rows it stored and its CPU seconds."""
        return cls(
            system,
            "PostgreSQL" if url.startswith("postgresql") else "SQLite",
            result.requests,
            accepted,
            result.non_2xx,
            stored,
            stored / seconds,
            result.rps,
            result.p50_ms,
            result.p99_ms,
            seconds,
            cpu / stored * 1e6 if stored else 0.0,
        )

    @property
    def capacity(self) -> float:
        """Events/s one core would sustain at the measured server CPU per event."""
        return 1e6 / self.cpu_us if self.cpu_us else 0.0

    @property
    def lost(self) -> int:
        """Accepted (answered 2xx, or counted by the server) but not in the store."""
        return max(0, self.accepted - self.stored)


TOWER_SPEC = """
[service]
name = "bench"

[server]
buffer_size = 50000
batch_size = 1000

[server.error_alerts]
enabled = false

[[server.projects]]
name = "bench"
rate_limit = 100000000
"""


def family_cpu(pid: int) -> float:
    """CPU time of ``pid`` and its children (uvicorn's worker processes)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += cpu_seconds(int(child))
    return total


def run_tower(
    url: str, workdir: Path, duration: float, connections: int, workers: int = 1
) -> Outcome:
    from controltower.ingest.projects import ensure_projects
    from controltower.spec import parse_spec
    from controltower.store import Store

    spec_path = workdir / "tower.toml"
    spec_path.write_text(TOWER_SPEC)
    spec = parse_spec(TOWER_SPEC, source=str(spec_path), environ={})
    with Store.open(url) as store:
        [project] = ensure_projects(store, spec.server.projects)
    port = free_port()
    log = (workdir / "tower-serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controltower",
            "serve",
            "--spec",
            str(spec_path),
            "--database-url",
            url,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-monitors",
            "--no-notify",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, process, "tower serve")
        if workers > 1:
            time.sleep(3)  # the workers import and start after the port opens
        script = workdir / "tower.lua"
        script.write_text(lua_script(f"/api/{project.id}/envelope/", project.public_key))
        cpu_before = family_cpu(process.pid)
        started = time.monotonic()
        result = wrk(base + f"/api/{project.id}/envelope/", script, duration, connections)
        finished = 0.0
        if workers == 1:
            # The server's own counters: every event it accepted, and every one it wrote.
            accepted = int(metric(base, "tower_ingest_events_accepted_total"))
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if metric(base, "tower_ingest_events_stored_total") >= accepted:
                    break
                time.sleep(0.05)
        else:
            # Each worker counts for itself: accepted is what wrk saw answered 2xx, and
            # the store is read until its row count stops growing.
            accepted = result.requests - result.non_2xx
            last, grown = -1, time.monotonic()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                rows = count_rows(url, "error_events")
                if rows != last:
                    last, grown = rows, time.monotonic()
                elif rows >= accepted and time.monotonic() - grown > 1.0:
                    break
                time.sleep(0.05)
            finished = grown
        elapsed = (finished if workers > 1 else time.monotonic()) - started
        cpu = family_cpu(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    return Outcome.measured(
        "tower serve" + (f" --workers {workers}" if workers > 1 else ""),
        url,
        result,
        accepted=accepted,
        stored=count_rows(url, "error_events"),
        seconds=elapsed,
        cpu=cpu,
    )


def run_baseline(url: str, workdir: Path, duration: float, connections: int) -> Outcome:
    port = free_port()
    log = (workdir / "baseline.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.ingest.baseline:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "BENCH_DB_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, process, "the baseline")
        script = workdir / "baseline.lua"
        script.write_text(lua_script("/api/1/envelope/", "unused"))
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        result = wrk(base + "/api/1/envelope/", script, duration, connections)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    return Outcome.measured(
        "baseline (INSERT per event)",
        url,
        result,
        accepted=result.requests - result.non_2xx,
        stored=count_rows(url, "baseline_events"),
        seconds=elapsed,
        cpu=cpu,
    )


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    lines = [
        f"`python -m benchmarks.ingest.run --duration {args.duration:g} --connections "
        f"{args.connections}`: wrk -t1 -c{args.connections} for {args.duration:g} s per "
        "system and store, each request one envelope with one Python-SDK-sized error "
        "event (five kinds) and a fresh event id. Events/s counts what was stored, from "
        "the first request until the last accepted event was written; lost = accepted "
        "minus rows in the store. Server CPU per event is the server process's user and "
        "system time over the run divided by the events stored (the database's own CPU "
        "not included); it depends less on what else the machine runs.",
        "",
        "| store | system | events/s stored | vs baseline | server CPU per event | "
        "vs baseline | accepted | refused (429) | lost | accept p50 / p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for store in ("SQLite", "PostgreSQL"):
        chosen = [o for o in outcomes if o.store == store]
        base = next((o for o in chosen if o.system.startswith("baseline")), None)
        for outcome in chosen:
            ratio = (
                f"{outcome.events_per_s / base.events_per_s:.2f}x"
                if base and base.events_per_s
                else "-"
            )
            cpu_ratio = f"{outcome.cpu_us / base.cpu_us:.2f}x" if base and base.cpu_us else "-"
            lines.append(
                f"| {store} | {outcome.system} | {outcome.events_per_s:,.0f} | {ratio} | "
                f"{outcome.cpu_us:,.0f} µs | {cpu_ratio} | "
                f"{outcome.accepted:,} | {outcome.refused:,} | {outcome.lost:,} | "
                f"{outcome.p50_ms:.1f} / {outcome.p99_ms:.1f} ms |"
            )
    pg = next((o for o in outcomes if o.store == "PostgreSQL" and o.system == "tower serve"), None)
    scaled = next(
        (o for o in outcomes if o.store == "PostgreSQL" and "--workers" in o.system), None
    )
    if pg is not None:
        verdict = "met" if pg.events_per_s >= 2000 and pg.lost == 0 else "NOT met"
        lines += [
            "",
            f"Goal (at least 2,000 events/s into PostgreSQL, none lost) with one "
            f"`tower serve` process: {verdict} ({pg.events_per_s:,.0f} events/s, "
            f"{pg.lost} lost)."
            + (
                f" With {scaled.system.split()[-1]} worker processes: "
                f"{scaled.events_per_s:,.0f} events/s, {scaled.lost} lost."
                if scaled
                else ""
            ),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "TOWER_TEST_POSTGRES_URL", "postgresql://tower:tower@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL admin URL; a database is created and dropped",
    )
    parser.add_argument("--stores", default="sqlite,postgres", help="which stores to run")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also run tower serve with this many worker processes on PostgreSQL (1: skip)",
    )
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    LOCK.touch(exist_ok=True)
    with LOCK.open() as lock:
        print(f"waiting for {LOCK} (another benchmark may be running)", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        outcomes: list[Outcome] = []
        with tempfile.TemporaryDirectory(prefix="tower-ingest-bench-") as tmp:
            workdir = Path(tmp)
            for kind in args.stores.split(","):
                systems: list[tuple[str, Any]] = [
                    ("baseline", run_baseline),
                    ("tower serve", run_tower),
                ]
                if kind == "postgres" and args.workers > 1:
                    systems.append(
                        (
                            f"tower serve --workers {args.workers}",
                            functools.partial(run_tower, workers=args.workers),
                        )
                    )
                for name, runner in systems:
                    print(f"== {kind}: {name}, {args.duration:g}s of load", flush=True)
                    with database(kind, args.pg, workdir) as url:
                        outcome = runner(url, workdir, args.duration, args.connections)
                    outcomes.append(outcome)
                    print(
                        f"   {outcome.events_per_s:,.0f} events/s stored, {outcome.accepted:,} "
                        f"accepted, {outcome.refused:,} refused, {outcome.lost} lost, "
                        f"{outcome.cpu_us:,.0f} µs server CPU per event ({outcome.seconds:.1f}s)",
                        flush=True,
                    )
    markdown = report(outcomes, args)
    print()
    print(markdown)
    if args.record:
        sys.path.insert(0, str(ROOT))
        from benchmarks.record import record

        record("ingest", markdown)
        print("recorded in benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
