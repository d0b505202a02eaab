"""How big the store gets: 30 simulated days of checks through the real write path.

    python -m benchmarks.monitor.store_sim --monitors 5 --days 30

A fake clock walks 30 days in 30 s steps. Every check of every monitor goes
through ``write_batch`` (raw result, counters, minute/hour/day rollups) in
batches of one simulated hour, and ``prune`` runs every simulated hour with
the default ``[store]`` retention and each monitor's ``keep_results`` (100),
exactly as the alerting leader of ``tower monitor`` does. One check in 500
fails, so results carry both kinds of message.

The figure per monitor is exact for the sample; the store of N monitors is
that times N (every table is per monitor). Sizes come from SQLite's ``dbstat``
(pages in use per table and index) and the file itself.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controltower.conditions import ConditionResult
from controltower.monitor.probes import CheckOutcome
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import Pending, RetentionPolicy, prune, write_batch
from controltower.spec import Spec
from controltower.spec.store import StoreSpec
from controltower.store import Store

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = 30.0


def table_sizes(path: Path) -> dict[str, int]:
    """Bytes of pages in use per table, its indexes counted with it."""
    with sqlite3.connect(path) as db:
        indexes = dict(db.execute("SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index'"))
        sizes: dict[str, int] = {}
        for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = indexes.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
    return sizes


def rows(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        found = {
            "monitor_results": db.execute("SELECT COUNT(*) FROM monitor_results").fetchone()[0]
        }
        for bucket, count in db.execute(
            "SELECT bucket, COUNT(*) FROM monitor_rollups GROUP BY bucket"
        ):
            found[f"rollups_{bucket}"] = count
    return found


def simulate(monitors: int, days: int, *, progress: bool = True) -> dict[str, Any]:
    spec = Spec.model_validate(
        {
            "service": {"name": "bench"},
            "monitors": [
                {"name": f"m{index}", "url": f"http://127.0.0.1:9/m{index}"}
                for index in range(monitors)
            ],
        }
    )
    policy = RetentionPolicy.from_spec(StoreSpec())
    passed = [ConditionResult("status == 200", True, 200, "status == 200: observed 200 (ok)")]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tower-store-") as tmp:
        path = Path(tmp) / "tower.db"
        store = Store.open(f"sqlite:///{path}")
        _service, ids = sync_monitors(store, spec)
        keep = {mid: 100 for mid in ids.values()}
        steps_per_hour = int(3600 / STEP)
        growth: dict[int, int] = {}
        checks = 0
        for hour in range(days * 24):
            batch = []
            for step in range(steps_per_hour):
                at = START + timedelta(seconds=(hour * steps_per_hour + step) * STEP)
                for index, mid in enumerate(ids.values()):
                    checks += 1
                    latency = 0.012 + (checks % 37) / 1000
                    if (checks + index) % 500 == 0:
                        outcome = CheckOutcome(
                            f"m{index}", at, "critical", latency, {}, error="HTTP 503"
                        )
                    else:
                        outcome = CheckOutcome(f"m{index}", at, "ok", latency, {}, passed)
                    batch.append(Pending(mid, outcome, at + timedelta(seconds=STEP), 3, 1))
            with store.session() as session:
                write_batch(session, batch, worker="sim")
            now = START + timedelta(hours=hour + 1)
            prune(store, now, policy, keep=keep)
            day = (hour + 1) // 24
            if (hour + 1) % 24 == 0 and day in (1, 7, 14, 21, 30, days):
                growth[day] = path.stat().st_size
                if progress:
                    print(
                        f"  [store] day {day}: {growth[day] / 1e6:.1f} MB, "
                        f"{time.monotonic() - started:.0f}s",
                        file=sys.stderr,
                        flush=True,
                    )
        store.close()
        sizes = table_sizes(path)
        counted = rows(path)
        with sqlite3.connect(path) as db:
            db.execute("VACUUM")
        vacuumed = path.stat().st_size
    monitor_bytes = sum(
        size for name, size in sizes.items() if name in ("monitor_results", "monitor_rollups")
    )
    raw_row = sizes.get("monitor_results", 0) / max(counted["monitor_results"], 1)
    rollup_rows = sum(count for name, count in counted.items() if name.startswith("rollups_"))
    rollup_row = sizes.get("monitor_rollups", 0) / max(rollup_rows, 1)
    # What retention lets one monitor reach at most: raw rows, 2 h of minutes,
    # 35 d of hours and 400 d of days.
    most_rows = (
        policy.minute / 60 + policy.hour / 3600 + policy.day / 86400,
        100,
    )
    return {
        "monitors": monitors,
        "days": days,
        "checks": checks,
        "seconds": time.monotonic() - started,
        "file_bytes_by_day": growth,
        "vacuumed_bytes": vacuumed,
        "table_bytes": sizes,
        "rows": counted,
        "bytes_per_monitor": monitor_bytes / monitors,
        "raw_bytes_per_row": raw_row,
        "rollup_bytes_per_row": rollup_row,
        "bound_bytes_per_monitor": most_rows[0] * rollup_row + most_rows[1] * raw_row,
        "retention": {"minute": policy.minute, "hour": policy.hour, "day": policy.day},
        "keep_everything_bytes_per_monitor": raw_row * days * 86400 / STEP,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=5)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(simulate(args.monitors, args.days)))


if __name__ == "__main__":
    main()
