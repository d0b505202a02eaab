"""Event retention: a store of a million error events pruned to ``events_keep = "7d"`` while
``tower serve`` keeps ingesting.

    python -m benchmarks.backup.events [--events 1000000] [--rate 100] [--pg URL] [--record]

For each store (a fresh SQLite file, a fresh PostgreSQL database):

1. A million events are seeded straight through the store layer (bulk INSERTs of
   ``error_events`` rows through ``Store.session``): 90 % received 8 to 38 days ago,
   10 % within the last 6 days, in five issues of one project.
2. ``tower serve`` starts on that store with ``[server] events_keep = "7d"``; its event
   retention service makes its first pass a minute after start, as shipped.
3. From the start, senders post Python-SDK-sized envelopes at ``--rate`` events/s, and
   a probe posts one marked event every 250 ms and polls the store until that event is
   stored: the ingestion latency an SDK's event really sees (accepted, buffered,
   written). The HTTP answer time of every post is recorded too.
4. The prune is watched from outside (the smallest ``error_events.id``): it starts
   when the oldest seeded event goes and ends when the last event older than the
   window is gone. Latencies are split into before, during and after the prune.

The goal (issue 18): the store shrinks to the window without blocking ingestion: the
p99 during the prune stays close to the p99 before it. The load average is recorded:
the machine is shared.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from benchmarks.ingest.run import KINDS, PLACEHOLDER, database, event_template, free_port, wait_port
from benchmarks.record import record
from controltower.ingest.projects import ensure_projects
from controltower.spec import parse_spec
from controltower.store import Store
from controltower.store.models.ingest import ErrorIssue

LOCK = Path("/tmp/tower-bench.lock")
SPEC = """
[service]
name = "bench"

[server]
events_keep = "7d"

[server.error_alerts]
enabled = false

[[server.projects]]
name = "bench"
rate_limit = 100000000
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}/{fifteen:.1f}"


def seed(url: str, total: int) -> tuple[int, int, float]:
    """Bulk-insert ``total`` events; the old ones first. Returns (old, last old id, seconds)."""
    spec = parse_spec(SPEC, source="tower.toml", environ={})
    begun = time.monotonic()
    now = datetime.now(UTC)
    old = total * 9 // 10
    with Store.open(url) as store:
        [project] = ensure_projects(store, spec.server.projects)
        with store.session() as session:
            issues = []
            for number, (kind, value, function) in enumerate(KINDS):
                issue = ErrorIssue(
                    project_id=project.id,
                    fingerprint=f"{number:064x}",
                    title=f"{kind}: {value}",
                    culprit=function,
                    count=total // len(KINDS),
                    first_seen=now - timedelta(days=38),
                    last_seen=now,
                )
                session.add(issue)
                issues.append(issue)
            session.flush()
            issue_ids = [i.id for i in issues]
        data = json.dumps({"exception": {"values": [{"type": "KeyError", "value": "'sku'"}]}})
        columns = (
            "project_id, issue_id, event_id, timestamp, received_at, level, environment, "
            "release, code, message, platform, data"
        )

        def rows() -> Iterator[tuple[object, ...]]:
            for n in range(total):
                if n < old:
                    age = timedelta(days=8) + timedelta(seconds=(n * 2592000) // old)
                else:
                    age = timedelta(seconds=((n - old) * 518400) // (total - old))
                at = now - age
                stamp: object = at.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at
                kind, value, _ = KINDS[n % len(KINDS)]
                yield (
                    *(project.id, issue_ids[n % len(issue_ids)], f"{n:032x}", stamp, stamp),
                    *("error", "production", "shop@1.0.0", kind, value, "python", data),
                )

        # Straight through the store's engine: executemany on SQLite, COPY on PostgreSQL.
        sqlite = store.engine.dialect.name == "sqlite"
        raw = store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if sqlite:
                marks = ", ".join("?" * 12)
                cursor.executemany(f"INSERT INTO error_events ({columns}) VALUES ({marks})", rows())
            else:
                with cursor.copy(f"COPY error_events ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows():
                        copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        with store.session() as session:
            last_old = session.execute(
                text("SELECT max(id) FROM error_events WHERE received_at < :cut"),
                {"cut": now - timedelta(days=7)},
            ).scalar()
    return old, int(last_old or 0), time.monotonic() - begun


@dataclass
class Samples:
    posts: list[tuple[float, float, int]] = field(default_factory=list)  # (at, seconds, status)
    stored: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    stop: threading.Event = field(default_factory=threading.Event)


def envelope(event_id: str, number: int) -> bytes:
    kind, value, function = KINDS[number % len(KINDS)]
    payload = event_template(kind, value, function).replace(PLACEHOLDER, event_id)
    head = json.dumps({"event_id": event_id})
    item = json.dumps({"type": "event", "length": len(payload.encode())})
    return f"{head}\n{item}\n{payload}\n".encode()


def sender(base: str, path: str, key: str, rate: float, samples: Samples) -> None:
    headers = {
        "Content-Type": "application/x-sentry-envelope",
        "X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7, sentry_client=bench/1",
    }
    number = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        next_at = time.monotonic()
        while not samples.stop.is_set():
            number += 1
            begun = time.monotonic()
            try:
                status = client.post(path, content=envelope(uuid.uuid4().hex, number)).status_code
            except httpx.HTTPError:
                status = 0
            samples.posts.append((begun, time.monotonic() - begun, status))
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def probe(base: str, path: str, key: str, url: str, samples: Samples) -> None:
    """Post one event every 250 ms and time until the store has it."""
    headers = {
        "Content-Type": "application/x-sentry-envelope",
        "X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7, sentry_client=bench/1",
    }
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    query = text("SELECT 1 FROM error_events WHERE project_id = :p AND event_id = :e")
    number = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        while not samples.stop.is_set():
            number += 1
            event_id = uuid.uuid4().hex
            begun = time.monotonic()
            try:
                client.post(path, content=envelope(event_id, number)).raise_for_status()
            except httpx.HTTPError:
                time.sleep(0.25)
                continue
            deadline = begun + 60
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    if conn.execute(query, {"p": int(path.split("/")[2]), "e": event_id}).first():
                        samples.stored.append((begun, time.monotonic() - begun))
                        break
                time.sleep(0.01)
            time.sleep(max(0.0, 0.25 - (time.monotonic() - begun)))
    engine.dispose()


def watch(url: str, last_old: int, samples: Samples, marks: dict[str, float]) -> None:
    """Find when the prune starts (the oldest event, the last seeded old id, goes) and ends
    (no seeded old event is left): two primary-key look-ups every 200 ms."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    oldest = text("SELECT count(*) FROM error_events WHERE id = :id")
    while not samples.stop.is_set():
        with engine.connect() as conn:
            low = int(conn.execute(text("SELECT min(id) FROM error_events")).scalar() or 0)
            gone = not conn.execute(oldest, {"id": last_old}).scalar()
        now = time.monotonic()
        if gone and "start" not in marks:
            marks["start"] = now
        if low > last_old and "end" not in marks:
            marks["end"] = now
        time.sleep(0.2)
    engine.dispose()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Outcome:
    store: str
    events: int
    seeded_seconds: float
    prune_seconds: float
    pruned: int
    left: int
    phases: dict[str, dict[str, float]]
    loads: list[str]


def run_store(kind: str, url: str, workdir: Path, args: argparse.Namespace) -> Outcome:
    print(f"{kind}: seeding {args.events} events", flush=True)
    old, last_old, seeded = seed(url, args.events)
    print(f"{kind}: seeded in {seeded:.0f}s ({old} older than the window)", flush=True)
    spec_path = workdir / "tower.toml"
    spec_path.write_text(SPEC)
    spec = parse_spec(SPEC, source=str(spec_path), environ={})
    with Store.open(url) as store:
        [project] = ensure_projects(store, spec.server.projects)
    port = free_port()
    log = (workdir / f"serve-{kind}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "controltower", "serve", "--spec", str(spec_path)),
            *("--database-url", url, "--port", str(port), "--log-level", "info"),
            *("--no-monitors", "--no-notify", "--no-backups"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    loads = [load()]
    samples = Samples()
    marks: dict[str, float] = {}
    threads: list[threading.Thread] = []
    try:
        wait_port(port, process, "tower serve")
        boot = time.monotonic()
        base = f"http://127.0.0.1:{port}"
        path = f"/api/{project.id}/envelope/"
        senders = 4
        for _ in range(senders):
            threads.append(
                threading.Thread(
                    target=sender,
                    args=(base, path, project.public_key, args.rate / senders, samples),
                )
            )
        threads.append(
            threading.Thread(target=probe, args=(base, path, project.public_key, url, samples))
        )
        threads.append(threading.Thread(target=watch, args=(url, last_old, samples, marks)))
        for thread in threads:
            thread.start()
        deadline = boot + args.timeout
        while time.monotonic() < deadline and "end" not in marks:
            time.sleep(1)
            if "start" in marks and int(time.monotonic()) % 15 == 0:
                print(f"{kind}: pruning for {time.monotonic() - marks['start']:.0f}s", flush=True)
        loads.append(load())
        time.sleep(args.after)
    finally:
        samples.stop.set()
        for thread in threads:
            thread.join(90)
        process.terminate()
        process.wait(60)
        log.close()
    start, end = marks.get("start", float("inf")), marks.get("end", float("inf"))
    warm = boot + 10

    def phase(at: float) -> str:
        if at < warm:
            return ""
        if at < start:
            return "before"
        return "during" if at <= end else "after"

    phases: dict[str, dict[str, float]] = {}
    for name in ("before", "during", "after"):
        posts = [s for at, s, _ in samples.posts if phase(at) == name]
        errors = sum(1 for at, _, status in samples.posts if phase(at) == name and status >= 300)
        errors += sum(1 for at, _, status in samples.posts if phase(at) == name and status == 0)
        stored = [s for at, s in samples.stored if phase(at) == name]
        phases[name] = {
            "posts": len(posts),
            "errors": errors,
            "http_p50": pct(posts, 0.5),
            "http_p99": pct(posts, 0.99),
            "stored_n": len(stored),
            "stored_p50": pct(stored, 0.5),
            "stored_p99": pct(stored, 0.99),
            "stored_max": max(stored) * 1000 if stored else float("nan"),
        }
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        left_old = int(
            conn.execute(
                text("SELECT count(*) FROM error_events WHERE id <= :last"), {"last": last_old}
            ).scalar()
            or 0
        )
    engine.dispose()
    loads.append(load())
    return Outcome(
        store=kind,
        events=args.events,
        seeded_seconds=seeded,
        prune_seconds=end - start if end != float("inf") else float("nan"),
        pruned=old - left_old,
        left=left_old,
        phases=phases,
        loads=loads,
    )


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    lines = [
        f"`python -m benchmarks.backup.events --events {args.events} --rate {args.rate:g}"
        f"{' --no-lock' if getattr(args, 'no_lock', False) else ''} --record`: "
        '`tower serve` (one process) with `events_keep = "7d"` on a store seeded '
        f"with {args.events:,} events (90 % older than the window), {args.rate:g} events/s "
        "posted by four senders plus a probe that times each marked event until it is "
        "stored. The prune is the retention service's own first pass (batches of 2,000 rows, "
        "one short transaction each).",
        "",
        "| store | seeded in | prune | events pruned | old left | phase | posts | non-2xx | "
        "HTTP p50 / p99 | stored p50 / p99 / max | load avg (1/5/15) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for o in outcomes:
        for index, name in enumerate(("before", "during", "after")):
            p = o.phases[name]
            head = (
                f"| {o.store} | {o.seeded_seconds:.0f} s | {o.prune_seconds:.1f} s | "
                f"{o.pruned:,} | {o.left} "
                if index == 0
                else "| | | | | "
            )
            lines.append(
                f"{head}| {name} | {p['posts']:.0f} | {p['errors']:.0f} | "
                f"{p['http_p50']:.1f} / {p['http_p99']:.1f} ms | "
                f"{p['stored_p50']:.0f} / {p['stored_p99']:.0f} / {p['stored_max']:.0f} ms | "
                f"{o.loads[min(index, len(o.loads) - 1)]} |"
            )
    verdicts = []
    for o in outcomes:
        before, during = o.phases["before"], o.phases["during"]
        ratio = during["stored_p99"] / before["stored_p99"] if before["stored_p99"] else 0
        verdicts.append(
            f"{o.store}: stored p99 during/before {ratio:.2f}, "
            f"{during['errors']:.0f} refused during the prune, {o.left} old events left"
        )
    lines += ["", "Ratios: " + "; ".join(verdicts) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s posted")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the prune")
    parser.add_argument("--after", type=float, default=15.0, help="seconds measured after")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "TOWER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres"
        ),
    )
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument(
        "--no-lock",
        action="store_true",
        help=f"run beside other benchmarks instead of waiting for {LOCK}",
    )
    args = parser.parse_args(argv)
    LOCK.touch(exist_ok=True)
    outcomes = []
    with LOCK.open() as lock:
        if not args.no_lock:
            print(f"waiting for {LOCK} (another benchmark may be running)", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        with tempfile.TemporaryDirectory(prefix="tower-retention-bench-") as tmp:
            for kind in args.stores.split(","):
                with database(kind, args.pg, Path(tmp)) as url:
                    outcomes.append(run_store(kind, url, Path(tmp), args))
    text_out = report(outcomes, args)
    print(text_out)
    if args.record:
        record("backup-events", text_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
