"""Decompression bombs against a real ``tower serve``: answer time and memory.

    python -m benchmarks.ingest.bombs [--rounds 5] [--record]

brotli bombs of 211 B, 809 B and 3.2 kB (decoding to 256 MiB, 1 GiB and 4 GiB;
``tests/fixtures/bombs``) and gzip and deflate bombs of about 200 B to 4 kB, posted
to ``envelope/``, ``store/`` and ``security/`` with a valid DSN key, a wrong key and
no key, ``rounds`` times each. Reported: every answer's status, the slowest and the
median answer time, and the growth of the server's resident memory (VmRSS) from
after a warm-up to the end. The peer in the same run is a valid gzip event of the
same endpoint (what a normal request costs on this machine now). Goals (issue 12):
every answer 4xx within 100 ms, RSS growth < 50 MB.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import httpx

from benchmarks.ingest.poison import Serve, envelope, event_body

ROOT = Path(__file__).resolve().parents[2]
BOMBS = ROOT / "tests" / "fixtures" / "bombs"
SPEC = """
[service]
name = "bombs"

[[server.projects]]
name = "web"
rate_limit = 100000000
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bombs() -> list[tuple[str, str, bytes]]:
    made = [(p.name, "br", p.read_bytes()) for p in sorted(BOMBS.glob("zeros-*.br"))]
    for size in (200_000, 1_000_000, 4_000_000):
        made.append((f"gzip {size // 1000} kB", "gzip", gzip.compress(b"\0" * size, 9)))
        made.append((f"deflate {size // 1000} kB", "deflate", zlib.compress(b"\0" * size, 9)))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from controltower.ingest.projects import load_projects
    from controltower.store import Store

    with tempfile.TemporaryDirectory(prefix="tower-bombs-") as tmp:
        spec = Path(tmp) / "tower.toml"
        spec.write_text(SPEC)
        url = f"sqlite:///{tmp}/tower.db"
        server = Serve(spec, url)
        try:
            with Store.open(url) as store:
                [project] = load_projects(store)
            keys = {"valid key": project.public_key, "wrong key": "0" * 32, "no key": ""}
            statuses: dict[int, int] = {}
            times: list[float] = []
            normal: list[float] = []
            rows: list[str] = []
            with httpx.Client(base_url=server.url, timeout=60) as client:
                event_id = uuid.uuid4().hex
                body = gzip.compress(envelope(event_body("ValueError", event_id), event_id))
                path = f"/api/{project.id}/envelope/?sentry_key={project.public_key}"
                for _ in range(20):  # warm-up, and the peer's figure
                    started = time.perf_counter()
                    client.post(path, content=body, headers={"Content-Encoding": "gzip"})
                    normal.append(time.perf_counter() - started)
                before = rss_mib(server.process.pid)
                peak = before
                for name, encoding, bomb in bombs():
                    mine: list[float] = []
                    for _ in range(args.rounds):
                        for key in keys.values():
                            for endpoint in ("envelope", "store", "security"):
                                query = f"?sentry_key={key}" if key else ""
                                started = time.perf_counter()
                                answer = client.post(
                                    f"/api/{project.id}/{endpoint}/{query}",
                                    content=bomb,
                                    headers={"Content-Encoding": encoding},
                                )
                                mine.append(time.perf_counter() - started)
                                statuses[answer.status_code] = (
                                    statuses.get(answer.status_code, 0) + 1
                                )
                        peak = max(peak, rss_mib(server.process.pid))
                    times += mine
                    rows.append(
                        f"| {name} | {len(bomb)} | {statistics.median(mine) * 1000:.1f} "
                        f"| {max(mine) * 1000:.1f} |"
                    )
                after = rss_mib(server.process.pid)
        finally:
            server.stop()
    worst = max(times) * 1000
    growth = max(after, peak) - before
    only_4xx = all(400 <= status < 500 for status in statuses)
    table = "\n".join(
        [
            "| bomb | bytes | median ms | slowest ms |",
            "| --- | ---: | ---: | ---: |",
            *rows,
        ]
    )
    summary = (
        f"Answers: {dict(sorted(statuses.items()))} (all 4xx: {'yes' if only_4xx else 'NO'}). "
        f"Slowest answer **{worst:.1f} ms** (goal < 100 ms: {'met' if worst < 100 else 'NOT met'}); "
        f"a normal gzip event on the same server: median {statistics.median(normal) * 1000:.1f} ms, "
        f"slowest {max(normal) * 1000:.1f} ms. Server RSS {before:.0f} MiB after warm-up, peak "
        f"{peak:.0f} MiB, end {after:.0f} MiB: growth **{growth:.1f} MiB** (goal < 50 MB: "
        f"{'met' if growth < 50 else 'NOT met'}). Load average during the run: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the machine was shared)."
    )
    print(table)
    print(summary)
    if args.record:
        from benchmarks.record import machine, record

        record(
            "ingest-bombs",
            f"`python -m benchmarks.ingest.bombs --rounds {args.rounds}` ({machine()}): each "
            "bomb posted to envelope/, store/ and security/ with a valid key, a wrong key and "
            f"no key, {args.rounds} times, to one `tower serve` on SQLite.\n\n"
            f"{table}\n\n{summary}",
        )


if __name__ == "__main__":
    main()
