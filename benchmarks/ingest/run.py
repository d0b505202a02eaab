"""Sustained error ingestion: tower serve against Bugsink, into SQLite and PostgreSQL, in one run.

    python -m benchmarks.ingest.run [--duration 15] [--connections 32] [--senders 4] [--record]

For each store (SQLite, PostgreSQL) and each load, tower and its peer run one after
the other on the same machine, with the same events:

- ``tower serve`` (one process, as shipped; also ``--workers 2`` on PostgreSQL).
- Bugsink (``benchmarks/ingest/bugsink.py``): installed into its own virtual
  environment, configured from its production single-server template, gunicorn
  with 2 workers and its snappea background worker (4 threads), as its docs say.
- The baseline (``--systems tower,bugsink,baseline``): the plainest Starlette
  endpoint, one INSERT per event (``benchmarks/ingest/baseline.py``).

Loads:

- raw envelopes at the maximum rate: wrk, ``--connections`` keep-alive
  connections, each request one envelope with one Python-SDK-sized error event
  (five kinds, so several issues) and a fresh event id;
- the real ``sentry-sdk`` transport: ``--senders`` processes each raising and
  capturing those five errors (``benchmarks/ingest/sdk_sender.py``).

Events/s is what was *stored*: rows in the product's own event table, divided by
the time from the first request until the last event was written. "Lost" is
accepted (tower's own counter; Bugsink's access log, 200 answers) minus stored.
Server CPU per event counts every process of the server (workers, snappea
included, the database server's not). The goal: tower stores at least 3x
Bugsink's events/s into PostgreSQL with none lost. The run holds
``/tmp/tower-bench.lock`` so two benchmarks never overlap.
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
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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
    started: float = 0.0  # wall clock (time.time()) of the first request


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
        match = re.search(pattern, out, re.MULTILINE)
        return match.group(1) if match else default

    return Wrk(
        requests=int(find(r"(\d+) requests in")),
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)")),
        rps=float(find(r"Requests/sec:\s+([\d.]+)")),
        # "^ 50%": the latency distribution's line, not a "+/- Stdev" figure such as "79.50%"
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)", "nan")),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)", "nan")),
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


def count_rows(url: str, table: str, where: str = "") -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            query = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
            return int(conn.execute(text(query)).scalar() or 0)
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


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User plus system CPU time of process ``pid`` so far (``reaped``: and of its waited-for children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if reaped:
        used += int(fields[13]) + int(fields[14])
    return used / os.sysconf("SC_CLK_TCK")


def tree_cpu(*pids: int) -> float:
    """CPU time of each process and all its descendants, including children already reaped.

    gunicorn restarts its workers (``--max-requests``): a worker's time moves into its
    parent's reaped-children time when it exits, so the sum stays whole.
    """
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid, reaped=True)
            children: list[int] = []
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    children += [int(c) for c in (task / "children").read_text().split()]
            total += tree_cpu(*children)
    return total


def family_cpu(pid: int) -> float:
    """CPU time of ``pid`` and its descendants (uvicorn's worker processes)."""
    return tree_cpu(pid)


@dataclass
class Outcome:
    system: str
    store: str
    load: str
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
    digest_ms: float = 0.0  # Bugsink: median time of one snappea digest task

    @classmethod
    def measured(
        cls,
        system: str,
        url: str,
        load: str,
        result: Wrk,
        *,
        accepted: int,
        stored: int,
        seconds: float,
        cpu: float,
    ) -> Outcome:
        """One system's figures from its load, the rows it stored and its CPU seconds."""
        return cls(
            system,
            "PostgreSQL" if url.startswith("postgresql") else "SQLite",
            load,
            result.requests,
            accepted,
            result.non_2xx,
            stored,
            stored / seconds if seconds > 0 else 0.0,
            result.rps,
            result.p50_ms,
            result.p99_ms,
            seconds,
            cpu / stored * 1e6 if stored else 0.0,
        )

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


class Tracker:
    """Samples a stored-events count every quarter second, during the load and after it.

    ``settled`` waits until the count has reached ``target`` (and ``ready()`` holds) and
    has not grown for ``settle`` seconds, and answers when (wall clock) it last grew: the
    moment the last event was written, to within one sample.
    """

    def __init__(self, count: Callable[[], int], interval: float = 0.25) -> None:
        self.count = count
        self.interval = interval
        self.last = -1
        self.changed = time.time()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Tracker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                value = self.count()
                if value != self.last:
                    self.last, self.changed = value, time.time()
            self.stop.wait(self.interval)

    def settled(
        self,
        *,
        target: int = 0,
        ready: Callable[[], bool] = lambda: True,
        settle: float = 1.0,
        limit: float = 300.0,
    ) -> float:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            quiet = time.time() - self.changed > settle
            if self.last >= target and quiet and ready():
                break
            time.sleep(0.05)
        return self.changed


RAW = "raw envelopes"
SDK = "sentry-sdk"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def sdk_load(dsn: str, duration: float, senders: int) -> Wrk:
    """``senders`` application processes reporting through the real sentry-sdk transport."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.ingest.sdk_sender", dsn, f"{duration:g}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(senders)
    ]
    for process in processes:  # all imported and initialised: then all start at once
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise SystemExit("a sentry-sdk sender did not start")
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.flush()
    times: list[float] = []
    sent = non_2xx = 0
    elapsed = 0.0
    first = time.time()
    for process in processes:
        stdout, _ = process.communicate(timeout=duration + 900)
        if process.returncode:
            raise SystemExit(f"a sentry-sdk sender failed (exit {process.returncode})")
        data = json.loads(stdout)
        times += data["times"]
        for status, count in data["statuses"].items():
            sent += count
            if not 200 <= int(status) < 300:
                non_2xx += count
        elapsed = max(elapsed, float(data["seconds"]))
        first = min(first, float(data["started"]))
    return Wrk(
        requests=sent,
        non_2xx=non_2xx,
        rps=sent / elapsed if elapsed else 0.0,
        p50_ms=percentile(times, 0.50) * 1000,
        p99_ms=percentile(times, 0.99) * 1000,
        started=first,
    )


def send(
    load: str,
    base: str,
    project_id: int,
    key: str,
    workdir: Path,
    args: argparse.Namespace,
) -> Wrk:
    """Put ``load`` on the server at ``base`` for the project: raw envelopes or the SDK."""
    if load == SDK:
        host = base.removeprefix("http://")
        return sdk_load(f"http://{key}@{host}/{project_id}", args.duration, args.senders)
    script = workdir / f"load-{project_id}.lua"
    script.write_text(lua_script(f"/api/{project_id}/envelope/", key))
    started = time.time()
    result = wrk(f"{base}/api/{project_id}/envelope/", script, args.duration, args.connections)
    result.started = started
    return result


def run_tower(
    url: str, workdir: Path, load: str, args: argparse.Namespace, workers: int = 1
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
        cpu_before = family_cpu(process.pid)

        def stored() -> int:
            # One process: the server's own counter of events written; several: each worker
            # counts for itself, so the rows in the store.
            if workers == 1:
                return int(metric(base, "tower_ingest_events_stored_total"))
            return count_rows(url, "error_events")

        with Tracker(stored) as tracker:
            result = send(load, base, project.id, project.public_key, workdir, args)
            if workers == 1:
                accepted = int(metric(base, "tower_ingest_events_accepted_total"))
            else:
                accepted = result.requests - result.non_2xx
            finished = tracker.settled(target=accepted)
        elapsed = finished - result.started
        cpu = family_cpu(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    return Outcome.measured(
        "tower serve" + (f" --workers {workers}" if workers > 1 else ""),
        url,
        load,
        result,
        accepted=accepted,
        stored=count_rows(url, "error_events"),
        seconds=elapsed,
        cpu=cpu,
    )


def run_bugsink(installation: Any, load: str, args: argparse.Namespace, workdir: Path) -> Outcome:
    """Bugsink (gunicorn and snappea) under ``load``, into a new project of ``installation``."""
    from benchmarks.ingest import bugsink

    project_id, key = installation.create_project(f"bench-{uuid.uuid4().hex[:8]}")

    def stored() -> int:
        return count_rows(installation.url, "events_event", f"project_id = {project_id}")

    with bugsink.running(installation) as (gunicorn, snappea):
        wait_port(installation.port, gunicorn, "Bugsink's gunicorn")
        bugsink.wait_ready(installation, gunicorn)
        time.sleep(2)  # snappea's foreman starts its workers
        cpu_before = tree_cpu(gunicorn.pid, snappea.pid)
        with Tracker(stored) as tracker:
            result = send(
                load, f"http://127.0.0.1:{installation.port}", project_id, key, workdir, args
            )
            # Digested when snappea's queue is empty and the count has stopped growing.
            finished = tracker.settled(
                ready=lambda: bugsink.backlog(installation) == 0, settle=2.0, limit=900
            )
        cpu = tree_cpu(gunicorn.pid, snappea.pid) - cpu_before
    outcome = Outcome.measured(
        "Bugsink",
        installation.url,
        load,
        result,
        accepted=bugsink.accepted(installation, project_id),
        stored=stored(),
        seconds=finished - result.started,
        cpu=cpu,
    )
    digests = bugsink.digest_times(installation)
    outcome.digest_ms = percentile(digests, 0.5) * 1000 if digests else 0.0
    return outcome


def run_baseline(url: str, workdir: Path, load: str, args: argparse.Namespace) -> Outcome:
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
        cpu_before = cpu_seconds(process.pid)
        result = send(load, base, 1, "unused", workdir, args)
        elapsed = time.time() - result.started
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    return Outcome.measured(
        "baseline (INSERT per event)",
        url,
        load,
        result,
        accepted=result.requests - result.non_2xx,
        stored=count_rows(url, "baseline_events"),
        seconds=elapsed,
        cpu=cpu,
    )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def report(
    outcomes: list[Outcome], args: argparse.Namespace, loads: tuple[str, str], profile: str
) -> str:
    command = (
        f"python -m benchmarks.ingest.run --duration {args.duration:g} --connections "
        f"{args.connections} --senders {args.senders}"
        + (f" --systems {args.systems}" if args.systems != "tower,bugsink" else "")
        + " --record"
    )
    from benchmarks.ingest.bugsink import VERSION

    lines = [
        f"`{command}` (Bugsink {VERSION} installed by the benchmark into its own virtual "
        "environment; wrk, PostgreSQL 15). Each system runs alone, one after the other, "
        f"{args.duration:g} s per load:",
        "",
        f"- **{RAW}**: wrk -t1 -c{args.connections}, each request one envelope with one "
        "Python-SDK-sized error event (five kinds) and a fresh event id, as fast as the "
        "server answers;",
        f"- **{SDK}**: {args.senders} processes raising and capturing those five errors with "
        "the real `sentry-sdk` (its background HTTP transport, at most 64 events queued); "
        "accept p50/p99 are timed around the transport's own request.",
        "",
        "Bugsink runs as its single-server production guide sets it up: the `singleserver` "
        "configuration template, gunicorn `--workers=2 --timeout=6 --max-requests=1000`, and "
        "`bugsink-runsnappea` (4 digest threads); its event quotas and the project's "
        "retention are raised so nothing is refused or evicted (tower's project rate limit "
        "is raised the same way). Events/s counts what was stored (rows in each product's "
        "own event table, for the run's project), from the first request until the last "
        "event was written; lost = accepted (tower: its accepted-events counter; Bugsink: "
        "200 answers in gunicorn's access log) minus stored. Server CPU per event is the user "
        "and system time of all the server's processes (gunicorn's workers and snappea "
        "included, the PostgreSQL server's not) divided by the events stored. Answered/s is "
        "the load's own rate (wrk's requests/s; the SDK senders' requests over their sending "
        "time, flush included): with the SDK, stored events/s can be no higher than what the "
        f"{args.senders} application processes send.",
        "",
        "| store | load | system | events/s stored | vs Bugsink | answered/s | server CPU per "
        "event | vs Bugsink | accepted | refused | lost | accept p50 / p99 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for store in ("SQLite", "PostgreSQL"):
        for load in loads:
            chosen = [o for o in outcomes if o.store == store and o.load == load]
            peer = next((o for o in chosen if o.system == "Bugsink"), None)
            for outcome in chosen:
                ratio = (
                    f"{outcome.events_per_s / peer.events_per_s:.1f}x"
                    if peer and peer.events_per_s
                    else "-"
                )
                cpu_ratio = f"{outcome.cpu_us / peer.cpu_us:.2f}x" if peer and peer.cpu_us else "-"
                lines.append(
                    f"| {store} | {load} | {outcome.system} | {outcome.events_per_s:,.0f} | "
                    f"{ratio} | {outcome.accept_rps:,.0f} | {outcome.cpu_us:,.0f} µs | {cpu_ratio} | "
                    f"{outcome.accepted:,} | {outcome.refused:,} | {outcome.lost:,} | "
                    f"{outcome.p50_ms:.1f} / {outcome.p99_ms:.1f} ms |"
                )
    lines += ["", *goal_lines(outcomes, loads)]
    if profile:
        lines += ["", profile]
    digests = [f"{o.store}, {o.load}: {o.digest_ms:,.0f} ms" for o in outcomes if o.digest_ms > 0]
    if digests:
        lines += [
            "",
            "Bugsink's endpoint writes each event to a file and queues a digest task; snappea "
            "digests them one at a time (each in its own immediate transaction), and the "
            "median digest task took " + "; ".join(digests) + " (snappea's own log). "
            "That serial digest sets Bugsink's stored events/s; tower's writer stores a "
            "batch per transaction.",
        ]
    lines += [
        "",
        f"Load average (1 / 5 / 15 min): {args.load_before} at the start, {load_average()} "
        "at the end (2 cores, shared with other work).",
    ]
    return "\n".join(lines)


def goal_lines(outcomes: list[Outcome], loads: tuple[str, ...]) -> list[str]:
    """The goal, per load: tower >= 3x Bugsink's events/s into PostgreSQL, none lost."""
    lines = []
    for load in loads:
        pg = [o for o in outcomes if o.store == "PostgreSQL" and o.load == load]
        tower = next((o for o in pg if o.system == "tower serve"), None)
        peer = next((o for o in pg if o.system == "Bugsink"), None)
        if tower is None or peer is None or not peer.events_per_s:
            continue
        ratio = tower.events_per_s / peer.events_per_s
        met = ratio >= 3.0 and tower.lost == 0
        lines.append(
            f"- Goal ({load}: tower >= 3x Bugsink's events/s into PostgreSQL, 0 lost): "
            f"**{'met' if met else 'NOT met'}**: {ratio:.1f}x ({tower.events_per_s:,.0f} "
            f"against {peer.events_per_s:,.0f} events/s), tower lost {tower.lost}, "
            f"Bugsink lost {peer.lost}."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (raw load)")
    parser.add_argument("--senders", type=int, default=4, help="sentry-sdk processes (SDK load)")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "TOWER_TEST_POSTGRES_URL", "postgresql://tower:tower@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL admin URL; databases are created and dropped",
    )
    parser.add_argument("--stores", default="sqlite,postgres", help="which stores to run")
    parser.add_argument("--loads", default="raw,sdk", help="which loads: raw, sdk")
    parser.add_argument(
        "--systems", default="tower,bugsink", help="which systems: tower, bugsink, baseline"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also run tower serve with this many worker processes on PostgreSQL, raw (1: skip)",
    )
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    args.load_before = ""
    # SIGTERM unwinds like Ctrl-C: servers stopped, databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(ROOT))
    from benchmarks.ingest import bugsink

    systems = args.systems.split(",")
    loads = tuple({"raw": RAW, "sdk": SDK}[name] for name in args.loads.split(","))
    if "bugsink" in systems:
        bugsink.ensure_installed()
    LOCK.touch(exist_ok=True)
    with LOCK.open() as lock:
        print(f"waiting for {LOCK} (another benchmark may be running)", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        args.load_before = load_average()
        outcomes: list[Outcome] = []
        with tempfile.TemporaryDirectory(prefix="tower-ingest-bench-") as tmp:
            workdir = Path(tmp)
            for kind in args.stores.split(","):
                with contextlib.ExitStack() as stack:
                    installation = None
                    if "bugsink" in systems:
                        print(f"== {kind}: configuring and migrating Bugsink", flush=True)
                        bugsink_url = stack.enter_context(database(kind, args.pg, workdir))
                        installation = bugsink.install(workdir, bugsink_url, free_port())
                    for load in loads:
                        runs: list[tuple[str, Any]] = []
                        if "tower" in systems:
                            runs.append(("tower serve", functools.partial(run_tower, load=load)))
                        scaled = args.workers > 1 and kind == "postgres" and load == RAW
                        if "tower" in systems and scaled:
                            runs.append(
                                (
                                    f"tower serve --workers {args.workers}",
                                    functools.partial(run_tower, load=load, workers=args.workers),
                                )
                            )
                        if "baseline" in systems:
                            runs.append(("baseline", functools.partial(run_baseline, load=load)))
                        for name, runner in runs:
                            print(f"== {kind}, {load}: {name}, {args.duration:g}s", flush=True)
                            with database(kind, args.pg, workdir) as url:
                                outcome = runner(url, workdir, args=args)
                            outcomes.append(outcome)
                            show(outcome)
                        if installation is not None:
                            print(f"== {kind}, {load}: Bugsink, {args.duration:g}s", flush=True)
                            outcome = run_bugsink(installation, load, args, workdir)
                            outcomes.append(outcome)
                            show(outcome)
    markdown = report(outcomes, args, loads, profile_note(outcomes))
    print()
    print(markdown)
    if args.record:
        from benchmarks.record import record

        record("ingest", markdown)
        print("recorded in benchmarks/RESULTS.md")


def show(outcome: Outcome) -> None:
    print(
        f"   {outcome.events_per_s:,.0f} events/s stored, {outcome.accepted:,} accepted, "
        f"{outcome.refused:,} refused, {outcome.lost} lost, {outcome.cpu_us:,.0f} µs server "
        f"CPU per event ({outcome.seconds:.1f}s), accept p50 {outcome.p50_ms:.1f} ms "
        f"p99 {outcome.p99_ms:.1f} ms",
        flush=True,
    )


def profile_note(outcomes: list[Outcome]) -> str:
    """Where the time goes, from the CPU figures: events/s one core of server CPU sustains."""
    parts = []
    for outcome in outcomes:
        if outcome.store == "PostgreSQL" and outcome.cpu_us:
            parts.append(
                f"{outcome.system} ({outcome.load}) {1e6 / outcome.cpu_us:,.0f} events per "
                "CPU-second"
            )
    if not parts:
        return ""
    return (
        "Server CPU per event as capacity (events one core of server CPU stores per second, "
        "PostgreSQL): " + "; ".join(parts) + "."
    )


if __name__ == "__main__":
    main()
