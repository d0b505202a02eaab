"""The API's latency while ``tower serve`` is flooded with wrong dashboard logins.

    python -m benchmarks.serve.login_flood [--seconds 4] [--rounds 3] [--record]

A real ``tower serve`` (SQLite, dashboard on) and, in one run, interleaved rounds
of three phases, each measuring ``GET /api/v1/projects`` with a read token one
request after another (p50, p99):

- idle: nothing else;
- one address: 32 concurrent browsers (another process) GET the login form and
  POST a wrong password for a real account, again and again, from 127.0.0.1: the
  per-account and per-client lockout answers them 429 before any hashing;
- many addresses: the same 32, each attempt from a new address and name
  (``X-Forwarded-For``, which uvicorn honours from 127.0.0.1, as behind a local
  proxy): no lockout applies, every attempt reaches the scrypt pool (one
  thread, 16 waiting at most, then 429 "busy").

Goal (issue 12): during a 32-way flood the API's p50 stays within 2x idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from benchmarks.ingest.poison import Serve
from benchmarks.record import record

SPEC = """
[service]
name = "flood"

[[server.projects]]
name = "web"
"""
FLOODERS = 32
GOAL = 2.0
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def flood(url: str, mode: str, seconds: float) -> dict[str, int]:
    """32 browsers logging in wrongly until ``seconds`` pass; answers by status."""
    counts: Counter[str] = Counter()
    end = time.monotonic() + seconds

    async def browser(index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while time.monotonic() < end:
                headers: dict[str, str] = {}
                name = "ana"
                if mode == "many":
                    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{index}"
                    headers["X-Forwarded-For"] = address
                    name = f"user{random.randrange(10**9)}"
                try:
                    page = await client.get("/login", headers=headers)
                    found = CSRF.search(page.text)
                    if not found:
                        counts[f"form {page.status_code}"] += 1
                        continue
                    answer = await client.post(
                        "/login",
                        headers=headers,
                        data={"csrf": found[1], "name": name, "password": "wrong", "next": "/"},
                        follow_redirects=False,
                    )
                    counts[str(answer.status_code)] += 1
                except httpx.HTTPError as exc:
                    counts[type(exc).__name__] += 1

    await asyncio.gather(*(browser(index) for index in range(FLOODERS)))
    return dict(counts)


def probe(url: str, token: str, seconds: float) -> list[float]:
    """Milliseconds of each API request, one after another, for ``seconds``."""
    times: list[float] = []
    end = time.monotonic() + seconds
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        while time.monotonic() < end:
            started = time.perf_counter()
            response = client.get("/api/v1/projects")
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return times


def phase(url: str, token: str, mode: str, seconds: float) -> tuple[list[float], dict[str, int]]:
    if mode == "idle":
        return probe(url, token, seconds), {}
    flooder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.serve.login_flood",
            "--flood",
            url,
            "--mode",
            mode,
            "--seconds",
            str(seconds + 1.0),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # the flood is under way before measuring
    times = probe(url, token, seconds)
    out, _ = flooder.communicate(timeout=120)
    return times, json.loads(out.strip().splitlines()[-1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--flood", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        print(json.dumps(asyncio.run(flood(args.flood, args.mode, args.seconds))))
        return

    from controltower.dashboard.auth import Accounts
    from controltower.server import create_token
    from controltower.store import Store

    modes = ("idle", "one", "many")
    samples: dict[str, list[list[float]]] = {mode: [] for mode in modes}
    answers: dict[str, Counter[str]] = {mode: Counter() for mode in modes}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "tower.toml"
        spec.write_text(SPEC)
        url = f"sqlite:///{Path(tmp) / 'tower.db'}"
        with Store.open(url) as store:
            Accounts(store).add_user("ana", "correct horse battery")
            token, _ = create_token(store, "bench", ["read"])
        server = Serve(spec, url, flags=("--no-monitors", "--no-notify", "--no-backups"))
        try:
            probe(server.url, token, 1.0)  # warm-up
            for round_ in range(args.rounds):
                for mode in modes:
                    times, counts = phase(server.url, token, mode, args.seconds)
                    samples[mode].append(times)
                    answers[mode].update(counts)
                    print(
                        f"round {round_ + 1} {mode}: p50 {pct(times, 0.5):.1f} ms, "
                        f"{len(times)} requests, logins {counts}",
                        flush=True,
                    )
        finally:
            server.stop()
    load_after = os.getloadavg()
    idle = statistics.median(pct(t, 0.5) for t in samples["idle"])
    rows = []
    verdicts = []
    labels = {
        "idle": "idle",
        "one": "32 browsers, one address (lockout)",
        "many": "32 browsers, a new address per attempt (hashing)",
    }
    for mode in modes:
        p50 = statistics.median(pct(t, 0.5) for t in samples[mode])
        p99 = statistics.median(pct(t, 0.99) for t in samples[mode])
        ratio = p50 / idle if idle else float("nan")
        total = sum(answers[mode].values())
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(answers[mode].items())) or "-"
        rate = total / (args.rounds * (args.seconds + 1.0)) if total else 0.0
        rows.append(
            f"| {labels[mode]} | {p50:.1f} | {p99:.1f} | {ratio:.2f} | {rate:.0f} | {seen} |"
        )
        if mode != "idle":
            verdicts.append(f"{mode}: {ratio:.2f}x")
    worst = max(statistics.median(pct(t, 0.5) for t in samples[m]) / idle for m in ("one", "many"))
    met = "met" if worst <= GOAL else "NOT met"
    markdown = "\n".join(
        [
            f"`python -m benchmarks.serve.login_flood --seconds {args.seconds:g} "
            f"--rounds {args.rounds} --record` (one `tower serve` on SQLite with the dashboard; "
            f"{args.rounds} interleaved rounds of {args.seconds:g} s per phase; the API probe is "
            "`GET /api/v1/projects`, one request after another; the flood runs in its own process). "
            f"Load average at start {load[0]:.1f}, at end {load_after[0]:.1f} "
            "(the machine is shared: absolute times are noisy, ratios less so).",
            "",
            "| phase | API p50 ms | API p99 ms | p50 vs idle | logins/s | login answers |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
            *rows,
            "",
            f"Worst p50 ratio {worst:.2f} ({'; '.join(verdicts)}): goal <= {GOAL:g}x idle **{met}**. "
            "401: wrong password (hashed); 429: locked out (no hashing) or the hashing pool "
            "busy (16 waiting).",
        ]
    )
    print(markdown)
    if args.record:
        record("serve-login-flood", markdown)


if __name__ == "__main__":
    main()
