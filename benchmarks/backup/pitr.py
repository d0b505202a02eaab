"""Point-in-time recovery under a constant write load, beside pg_dump on the same database.

    python -m benchmarks.backup.pitr [--minutes 5] [--seed-mb 256] [--archive-timeout 30s] [--record]

On a private cluster (initdb in a temporary folder, as tests/test_backup_pitr.py makes):

1. ``tower backup setup``'s path (``pitr.setup``) prints the archive settings, they are
   applied, the stanza is created; a ballast table of ``--seed-mb`` gives the database
   a size, and a full pgBackRest backup is taken.
2. A writer inserts one row every 100 ms for ``--minutes``; every second the achieved
   RPO is read as ``tower backup status`` reads it (``pitr.archive_status``: the age of
   the changes not yet archived). Half-way, ``tower backup run`` with the pg_dump method
   dumps the same database under the same load: its size and dump time give the dump
   method's worst-case RPO (the 15-minute schedule plus the dump time).
3. After the load, restores to several times T (a quarter in, half-way, the last commit)
   go into new data directories; each is started and its rows are compared row by row
   with the rows whose commit returned before T.

The goal (issue 18): the archived-WAL age stays at most 60 s, and every restore has
exactly the rows committed before T. The load average is recorded: the machine is
shared. Everything lives in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from tests.backup_support import write_spec
from tests.pitr_support import Cluster, Writer, pg_bin, private_cluster, restored_rows

from benchmarks.record import record
from controltower.backup import pitr, run_backup
from controltower.store import Store
from controltower.units import format_duration, format_size

LOCK = Path("/tmp/tower-bench.lock")
SCHEDULE = 15 * 60.0  # the plans' RPO, and the tightest pg_dump schedule they describe


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}/{fifteen:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=0.1, help="seconds between rows")
    parser.add_argument("--seed-mb", type=int, default=256)
    parser.add_argument("--archive-timeout", default="30s")
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument(
        "--no-lock",
        action="store_true",
        help=f"run beside other benchmarks instead of waiting for {LOCK} (the load average "
        "recorded with the results tells how busy the machine was)",
    )
    args = parser.parse_args(argv)
    bin_dir = pg_bin()
    if bin_dir is None:
        print("PostgreSQL server binaries and pgbackrest are needed", file=sys.stderr)
        return 2
    LOCK.touch(exist_ok=True)
    with LOCK.open() as lock:
        if not args.no_lock:
            print(f"waiting for {LOCK} (another benchmark may be running)", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        with private_cluster(bin_dir) as cluster:
            return run(cluster, bin_dir, args)


def run(cluster: Cluster, bin_dir: Path, args: argparse.Namespace) -> int:
    loads = [load()]
    spec = cluster.spec(archive_timeout=args.archive_timeout, rpo="60s")
    first = pitr.setup(spec, cluster.folder)
    cluster.apply(first.missing)
    assert pitr.setup(spec, cluster.folder).checked
    print(f"cluster {cluster.data} archiving; seeding {args.seed_mb} MB", flush=True)
    with psycopg.connect(cluster.url, autocommit=True) as connection:
        connection.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text NOT NULL)")
        connection.execute("CREATE TABLE ballast (id bigint PRIMARY KEY, payload text)")
        rows = args.seed_mb * 1024 * 1024 // 180
        connection.execute(
            "INSERT INTO ballast SELECT g, repeat(md5(g::text), 3) "  # type: ignore[arg-type]
            f"FROM generate_series(1, {rows}) g"
        )
        connection.execute("CHECKPOINT")
    begun = time.monotonic()
    full = pitr.backup(spec, cluster.folder)
    full_seconds = time.monotonic() - begun
    print(f"full backup {full.label} in {full_seconds:.1f}s", flush=True)

    writer = Writer(cluster.url, every=args.every)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    ages: list[float] = []
    failing = 0
    dump: dict[str, float] = {}
    duration = args.minutes * 60
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < duration:
            status = pitr.archive_status(spec)
            failing += status.failing
            if status.age is not None:
                ages.append(status.age)
            if not dump and elapsed >= duration / 2:
                dump = pg_dump(cluster.url, cluster.folder / "dump")
                print(f"pg_dump under load: {dump}", flush=True)
                continue
            if int(elapsed) % 30 == 0:
                print(f"{elapsed:4.0f}s rows {len(writer.commits)} age max {max(ages):.1f}s")
            time.sleep(1.0)
    finally:
        writer.stop.set()
        thread.join(10)
    loads.append(load())
    with psycopg.connect(cluster.url, autocommit=True) as connection:
        size_row = connection.execute("SELECT pg_database_size('postgres')").fetchone()
        connection.execute("SELECT pg_switch_wal()")
        archived_row = connection.execute("SELECT archived_count FROM pg_stat_archiver").fetchone()
    size = int(size_row[0]) if size_row else 0
    end = time.monotonic() + 120
    while pitr.archive_status(spec).age != 0.0 and time.monotonic() < end:
        time.sleep(0.5)

    commits = len(writer.commits)
    cuts = []
    for label, index in (
        ("a quarter in", commits // 4),
        ("half-way", commits // 2),
        ("the last commit", commits - 2),
    ):
        when, expected = writer.cut(index)
        target = cluster.folder / f"restored-{index}"
        begun = time.monotonic()
        pitr.restore_to_time(spec, cluster.folder, datetime.fromtimestamp(when, UTC), target)
        got = restored_rows(cluster, target, "SELECT id, note FROM orders ORDER BY id")
        seconds = time.monotonic() - begun
        missing = len(set(expected) - set(got))
        extra = len(set(got) - set(expected))
        cuts.append((label, len(expected), len(got), missing, extra, got == expected, seconds))
        print(f"restore to {label}: {len(got)}/{len(expected)} rows, exact {got == expected}")
        shutil.rmtree(target, ignore_errors=True)
    loads.append(load())

    worst = max(ages) if ages else float("nan")
    dump_rpo = SCHEDULE + dump.get("seconds", 0.0)
    met = worst <= 60 and failing == 0 and all(c[5] for c in cuts)
    lines = [
        f"`python -m benchmarks.backup.pitr --minutes {args.minutes:g} --seed-mb {args.seed_mb} "
        f"--archive-timeout {args.archive_timeout}{' --no-lock' if args.no_lock else ''} "
        "--record`: a private PostgreSQL "
        f"{bin_dir.parent.name} cluster (initdb), pgBackRest "
        f"{pitr.run(pitr.Pitr.from_spec(spec, cluster.folder), ['pgbackrest', 'version']).split()[-1]}"
        f", one row, then {args.every * 1000:.0f} ms of sleep, for {args.minutes:g} minutes "
        f"({commits} rows), database {format_size(size)}; load average (1/5/15 min) "
        f"{' → '.join(loads)} on the shared 2-core machine"
        + (", beside other benchmarks (--no-lock)." if args.no_lock else "."),
        "",
        '| | pgBackRest PITR (`method = "pitr"`) | pg_dump (`*/15 * * * *`) |',
        "| --- | --- | --- |",
        f"| achieved RPO (worst) | {worst:.1f} s archived-WAL age (median "
        f"{statistics.median(ages):.1f} s, {len(ages)} samples, {failing} failing) | "
        f"{format_duration(dump_rpo)} (schedule 15 min + dump {dump.get('seconds', 0):.1f} s) |",
        f"| backup | full {format_duration(full_seconds)} before the load; WAL archived "
        f"continuously ({archived_row[0] if archived_row else 0} segments, archive_timeout "
        f"{args.archive_timeout}) | {format_size(int(dump.get('size', 0)))} in "
        f"{dump.get('seconds', 0):.1f} s under the load |",
        f"| RPO ratio | **{dump_rpo / max(worst, 1.0):.0f}x** smaller with PITR | 1x |",
        "",
        "| restore to T | rows committed before T | rows restored | missing | extra | "
        "row by row | restore + recovery |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for label, want, got_n, missing, extra, exact, seconds in cuts:
        lines.append(
            f"| {label} | {want} | {got_n} | {missing} | {extra} | "
            f"{'identical' if exact else 'DIFFERENT'} | {seconds:.1f} s |"
        )
    lines += [
        "",
        "Goal (archived-WAL age ≤ 60 s under the load, restores exact): "
        + ("**met**." if met else "**not met** (see the table)."),
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record("backup-pitr", text)
    return 0 if met else 1


def pg_dump(url: str, folder: Path) -> dict[str, float]:
    """``tower backup run`` with the pg_dump method on the same database: size and time."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = write_spec(folder, url)
    with Store.open(None, root=folder) as store:
        result = run_backup(spec, store)
    return {"size": float(result.size), "seconds": result.duration}


if __name__ == "__main__":
    raise SystemExit(main())
