"""Poisoned ingestion with a SIGTERM mid-backlog: nothing accepted may be lost.

    python -m benchmarks.ingest.poison [--events 20000] [--pg URL] [--record]

For each store (a fresh SQLite file, a fresh PostgreSQL database) and each of two
runs, one clean and one with 1% of the events poisoned (every shape below):

- a real ``tower serve`` receives ``events`` envelopes as fast as ``concurrency``
  connections can post them (each its own event id); the accepted rate is the
  number answered 200 over the sending time;
- when the last answer is in, the server gets SIGTERM while events are still
  buffered (a long ``flush_interval`` keeps the backlog; a short
  ``shutdown_timeout`` makes the stop spool part of it), and is started again;
- once the restarted server has written its spool, every accepted event id must
  be in ``error_events`` or ``ingest_dead_letters`` (checked in the database),
  and every issue's events are read back through the API: no 5xx.

The poison, every shape from the report that threw ingestion off: lone
surrogates (in values and keys), NUL, ``1e400``, ``NaN``/``Infinity``,
year-1 and year-9999 timestamps, a 1e300 epoch, a 31-digit integer, invalid
UTF-8, nesting 60 deep, non-string release and environment, a malformed event id.
The run holds ``/tmp/tower-bench.lock`` so two benchmarks never overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[2]
LOCK = Path("/tmp/tower-bench.lock")

SPEC = """
[service]
name = "poison"

[server]
flush_interval = "{flush}"
batch_size = {batch}
buffer_size = {buffer}
shutdown_timeout = "{shutdown}"

[[server.projects]]
name = "web"
rate_limit = 100000000
"""

POISON: list[bytes] = [
    b'"message": "lone \\ud800 surrogate"',
    b'"message": "nul \\u0000 inside"',
    b'"extra": {"big": 1e400, "small": -1e400}',
    b'"extra": {"n": NaN, "i": Infinity, "j": -Infinity}',
    b'"timestamp": "0001-01-01T00:00:00Z"',
    b'"timestamp": "9999-12-31T23:59:59-05:00"',
    b'"timestamp": 1e300',
    b'"extra": {"id": 1000000000000000000000000000000}',
    b'"message": "caf\xe9 \xff\xfe not utf-8"',
    b'"tags": {"k\\udfff\\u0000": "v\\udc00"}',
    b'"extra": ' + b'{"a": ' * 60 + b"1" + b"}" * 60,
    b'"release": {"a": [1, 2]}, "environment": 12345, "level": ["x"]',
    b'"logentry": {"message": "\\ud800%s", "params": [NaN]}',
]


def event_body(kind: str, event_id: str, poison: bytes | None = None) -> bytes:
    """An error event as JSON; ``poison`` fields are appended (the later key wins)."""
    event = {
        "event_id": event_id,
        "level": "error",
        "platform": "python",
        "release": "shop@1.0",
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": f"{kind} happened",
                    "stacktrace": {
                        "frames": [
                            {"filename": "shop/app.py", "function": "handle", "in_app": True},
                            {"filename": f"shop/{kind.lower()}.py", "function": "run"},
                        ]
                    },
                }
            ]
        },
    }
    data = json.dumps(event).encode()
    return data[:-1] + b", " + poison + b"}" if poison else data


def envelope(payload: bytes, event_id: str) -> bytes:
    header = json.dumps({"event_id": event_id}).encode()
    item = json.dumps({"type": "event", "length": len(payload)}).encode()
    return header + b"\n" + item + b"\n" + payload + b"\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Serve:
    """``tower serve`` as its own process."""

    def __init__(
        self,
        spec: Path,
        url: str,
        flags: tuple[str, ...] = ("--no-dashboard", "--no-monitors", "--no-notify", "--no-backups"),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = spec.parent / f"serve-{self.port}.log"
        self._log = self.log.open("wb")
        environ = {**os.environ, "TOWER_DATABASE_URL": url, "NO_COLOR": "1"}
        environ.pop("TOWER_ENV", None)
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "controltower", "serve", "--spec", str(spec)),
                *("--port", str(self.port), "--database-url", url, "--log-level", "warning"),
                *flags,
            ],
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=spec.parent,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tower serve did not start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


@dataclass
class Outcome:
    store: str
    poisoned: bool
    sent: int = 0
    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    first_summary: str = ""
    spooled: int = 0
    replayed: int = 0
    stored: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    read_errors: int = 0
    events_read: int = 0
    unaccounted: int = 0

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


async def _send(
    url: str, path: str, bodies: list[tuple[str, bytes]], concurrency: int
) -> tuple[list[str], dict[int, int], float]:
    accepted: list[str] = []
    refused: dict[int, int] = {}
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while queue:
                event_id, body = queue.pop()
                try:
                    answer = await client.post(path, content=body)
                except (
                    httpx.TransportError
                ):  # no answer (a keep-alive closed under us): not accepted
                    refused[0] = refused.get(0, 0) + 1
                    continue
                if answer.status_code == 200:
                    accepted.append(event_id)
                else:
                    refused[answer.status_code] = refused.get(answer.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return accepted, refused, time.perf_counter() - started


def _spooled(summary: str) -> int:
    match = re.search(r"(\d+) spooled", summary)
    return int(match.group(1)) if match else 0


def _read_back(url: str, token: str) -> tuple[int, int]:
    """(events read, answers that were not 200) paging every issue's events."""
    read = errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        issues: list[int] = []
        before = ""
        while True:
            answer = client.get(f"/api/v1/issues?limit=500{before}")
            if answer.status_code != 200:
                return read, errors + 1
            page = answer.json()
            issues += [item["id"] for item in page["items"]]
            if page["next"] is None:
                break
            before = f"&before={page['next']}"
        for issue in issues:
            before = ""
            while True:
                answer = client.get(f"/api/v1/issues/{issue}/events?limit=500{before}")
                if answer.status_code != 200:
                    errors += 1
                    break
                page = answer.json()
                read += len(page["items"])
                for item in page["items"][:3]:
                    single = client.get(f"/api/v1/events/{item['event_id']}")
                    errors += single.status_code != 200
                if page["next"] is None:
                    break
                before = f"&before={page['next']}"
        letters = client.get("/api/v1/ingest/dead-letters?limit=500")
        errors += letters.status_code != 200
    return read, errors


def poisoned_run(
    store_url: str,
    root: Path,
    *,
    events: int,
    poisoned: bool,
    concurrency: int = 16,
    share: int = 100,
    flush: str = "30s",
    batch: int = 1_000_000,
    shutdown: str = "2s",
) -> Outcome:
    """One run (see the module docstring); ``share``: one event in ``share`` is poisoned."""
    from controltower.ingest.projects import load_projects
    from controltower.server import create_token
    from controltower.store import Store
    from controltower.store.models.ingest import DeadLetter, ErrorEvent

    root.mkdir(parents=True, exist_ok=True)
    spec = root / "tower.toml"
    spec.write_text(SPEC.format(flush=flush, batch=batch, buffer=events + 1000, shutdown=shutdown))
    outcome = Outcome("postgresql" if store_url.startswith("postgresql") else "sqlite", poisoned)
    server = Serve(spec, store_url)
    try:
        with Store.open(store_url) as store:
            [project] = load_projects(store)
            token, _ = create_token(store, "poison", ["read"])
        kinds = ["ValueError", "KeyError", "TimeoutError", "ZeroDivisionError"]
        bodies: list[tuple[str, bytes]] = []
        for n in range(events):
            event_id = uuid.uuid4().hex
            poison = POISON[(n // share) % len(POISON)] if poisoned and n % share == 0 else None
            bodies.append(
                (event_id, envelope(event_body(kinds[n % 4], event_id, poison), event_id))
            )
        path = f"/api/{project.id}/envelope/?sentry_key={project.public_key}"
        accepted, outcome.refused, outcome.seconds = asyncio.run(
            _send(server.url, path, bodies, concurrency)
        )
        outcome.sent = events
        outcome.accepted = len(accepted)
    finally:
        code = server.stop()
    outcome.first_summary = server.output().strip().splitlines()[-1] if server.output() else ""
    if code != 0:
        raise RuntimeError(f"tower serve exited {code}:\n{server.output()[-3000:]}")
    outcome.spooled = _spooled(outcome.first_summary)
    again = Serve(spec, store_url)
    try:
        deadline = time.monotonic() + 300
        while True:
            figures = httpx.get(
                f"{again.url}/api/v1/ingest",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ).json()["process"]
            if figures["buffered"] == 0 and figures["replayed"] >= outcome.spooled:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the spool was not replayed: {figures}")
            time.sleep(0.2)
        outcome.replayed = figures["replayed"]
        outcome.unaccounted = figures["unaccounted"]
        outcome.events_read, outcome.read_errors = _read_back(again.url, token)
    finally:
        again.stop()
    with Store.open(store_url) as store, store.session() as session:
        stored = set(session.scalars(select(ErrorEvent.event_id)))
        dead = set(session.scalars(select(DeadLetter.event_id)))
    outcome.stored = len(stored & set(accepted))
    outcome.dead_lettered = len(dead & set(accepted))
    outcome.dropped = len(set(accepted) - stored - dead)
    return outcome


@contextlib.contextmanager
def _database(base: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"tower_poison_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _table(outcomes: list[Outcome]) -> str:
    rows = [
        "| store | poison | accepted | accepted/s | vs clean | spooled at SIGTERM | replayed "
        "| stored | dead-lettered | dropped | events read back | 5xx reading |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    clean = {o.store: o.rate for o in outcomes if not o.poisoned}
    for o in outcomes:
        ratio = o.rate / clean[o.store] if clean.get(o.store) else float("nan")
        rows.append(
            f"| {o.store} | {'1%' if o.poisoned else 'none'} | {o.accepted} | {o.rate:.0f} "
            f"| {ratio:.2f} | {o.spooled} | {o.replayed} | {o.stored} | {o.dead_lettered} "
            f"| {o.dropped} | {o.events_read} | {o.read_errors} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pg", default=os.environ.get("TOWER_TEST_POSTGRES_URL", ""))
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        outcomes: list[Outcome] = []
        with tempfile.TemporaryDirectory(prefix="tower-poison-") as tmp:
            for name in ["sqlite"] + (["postgresql"] if args.pg else []):
                for poisoned in (False, True):
                    where = Path(tmp) / f"{name}-{'poison' if poisoned else 'clean'}"
                    opened = (
                        _database(args.pg)
                        if name == "postgresql"
                        else contextlib.nullcontext(f"sqlite:///{where}/tower.db")
                    )
                    with opened as url:
                        outcome = poisoned_run(
                            url,
                            where,
                            events=args.events,
                            poisoned=poisoned,
                            concurrency=args.concurrency,
                        )
                    outcomes.append(outcome)
                    print(
                        f"{name} poison={poisoned}: {outcome.accepted} accepted "
                        f"({outcome.rate:.0f}/s), spooled {outcome.spooled}, stored "
                        f"{outcome.stored}, dead {outcome.dead_lettered}, dropped "
                        f"{outcome.dropped}, 5xx reading {outcome.read_errors}",
                        flush=True,
                    )
        table = _table(outcomes)
        print(table)
        if args.record:
            from benchmarks.record import machine, record

            ratios = [
                o.rate / c.rate
                for o in outcomes
                if o.poisoned
                for c in outcomes
                if not c.poisoned and c.store == o.store and c.rate
            ]
            lost = sum(o.dropped for o in outcomes)
            worst = min(ratios) if ratios else float("nan")
            record(
                "ingest-poison",
                f"`python -m benchmarks.ingest.poison --events {args.events} --concurrency "
                f"{args.concurrency}` ({machine()}): per store, a clean run and a run with 1% "
                "poisoned events (every shape in the module's docstring), posted as fast as "
                f"{args.concurrency} connections go, then SIGTERM with the backlog buffered "
                "(flush_interval 30 s, shutdown_timeout 2 s, so part of it is spooled), then "
                "a restart that replays the spool. Accepted/s is 200 answers over the sending "
                "time; dropped = accepted ids in neither error_events nor ingest_dead_letters.\n\n"
                f"{table}\n\n"
                f"Accepted rate with poison / without: worst **{worst:.2f}** (goal >= 0.8: "
                f"{'met' if worst >= 0.8 else 'NOT met'}); dropped: **{lost}** (goal 0: "
                f"{'met' if lost == 0 else 'NOT met'}).",
            )


if __name__ == "__main__":
    main()
