"""``tower backup run``: dump PostgreSQL in custom format, hashing the stream as it is written.

The dump and the row counts come from one exported snapshot, so the counts
recorded in the metadata are exactly what a restore must bring back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from controltower.backup import crypto, records
from controltower.backup.archive import BackupMeta
from controltower.backup.destinations import Destination, open_destination
from controltower.backup.heartbeat import ping
from controltower.backup.pg import Target, Tools, dump_args, qualified, tail
from controltower.clock import system_clock
from controltower.exceptions import BackupError
from controltower.spec import Spec
from controltower.store import Store
from controltower.typing import Clock

_CHUNK = 1024 * 1024
Progress = Callable[[int], None]


@dataclass
class BackupResult:
    name: str
    kind: str
    ok: bool
    size: int = 0
    sha256: str = ""
    duration: float = 0.0
    location: str = ""
    server_version: str = ""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    heartbeat_error: str = ""
    unchanged: bool = False
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def database_url(spec: Spec, override: str | None = None) -> str:
    url = override or (
        spec.backup.database_url.get_secret_value() if spec.backup.database_url else ""
    )
    if not url:
        raise BackupError(
            "no database to back up: [backup] database_url is empty",
            hint='set database_url = "${DATABASE_URL}" in [backup] and export DATABASE_URL',
        )
    return url


def spec_root(spec: Spec) -> Path:
    """The folder of tower.toml: relative paths in the spec start there."""
    return Path(spec.source).resolve().parent


def new_name(spec: Spec, clock: Clock, kind: str = "") -> str:
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    middle = f"-{kind}" if kind else ""
    return f"{spec.service.name}{middle}-{stamp}-{secrets.token_hex(3)}"


def run_backup(
    spec: Spec,
    store: Store,
    *,
    clock: Clock = system_clock,
    url: str | None = None,
    destination: Destination | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    actor: str = "tower",
) -> BackupResult:
    """Back up the database of ``spec`` to its destination; ping the heartbeat either way."""
    target = Target.from_url(database_url(spec, url))
    dest = destination or open_destination(
        spec.backup.destination, root=spec_root(spec), environ=environ
    )
    name = new_name(spec, clock)
    suffix = crypto.SUFFIX if spec.backup.encryption.enabled else ""
    key = f"{spec.service.name}/{name}.dump{suffix}"
    started = clock.now()
    begin = clock.monotonic()
    row_id = records.start_row(
        store,
        spec,
        name=name,
        kind="database",
        at=started,
        destination=dest.describe(),
        key=key,
    )
    try:
        tools = Tools.find(spec.backup.pg_bin, environ)
        staging = dest.staging_dir()
        with tempfile.TemporaryDirectory(dir=staging, prefix=".tower-backup-") as work:
            partial = Path(work) / f"{name}.dump"
            server_version, tables, sha256, size = _dump(
                spec, tools, target, partial, progress=progress
            )
            sealed = seal(spec, partial, sha256, size)
            finished = clock.now()
            meta = BackupMeta(
                name=name,
                kind="database",
                service=spec.service.name,
                environment=records.environment_of(spec),
                file=sealed.file,
                size=sealed.size,
                sha256=sealed.sha256,
                started_at=started.isoformat(),
                finished_at=finished.isoformat(),
                duration=round(clock.monotonic() - begin, 3),
                source=target.display,
                database=target.dbname,
                server_version=server_version,
                pg_dump_version=tools.version,
                compress=spec.backup.compress,
                tables=tables,
                encryption=sealed.encryption,
                recipients=list(spec.backup.encryption.recipients) if sealed.encryption else [],
                plain_sha256=sha256 if sealed.encryption else "",
                plain_size=size if sealed.encryption else 0,
            )
            dest.put_file(key, sealed.path, sha256=sealed.sha256)
            dest.put_bytes(f"{spec.service.name}/{name}.json", meta.to_json())
        records.finish_row(store, row_id, meta, finished=finished, actor=actor)
    except Exception as exc:
        message = target.scrub(str(exc))
        records.fail_row(store, row_id, message, finished=clock.now(), actor=actor)
        ping(spec.backup.heartbeat, ok=False, spec=spec, store=store, clock=clock)
        if isinstance(exc, BackupError):
            raise BackupError(message, hint=exc.hint) from None
        raise BackupError(f"backup {name} failed: {message}") from None
    finally:
        if destination is None:
            dest.close()
    heartbeat_error = ping(spec.backup.heartbeat, ok=True, spec=spec, store=store, clock=clock)
    return BackupResult(
        name=name,
        kind="database",
        ok=True,
        size=meta.size,
        sha256=meta.sha256,
        duration=meta.duration,
        location=dest.describe(key),
        server_version=server_version,
        tables=tables,
        heartbeat_error=heartbeat_error,
    )


@dataclass
class Sealed:
    """The file that leaves this machine: the dump itself, or its age ciphertext."""

    path: Path
    file: str
    sha256: str
    size: int
    encryption: str = ""


def seal(spec: Spec, path: Path, sha256: str, size: int) -> Sealed:
    """Encrypt ``path`` to ``[backup.encryption] recipients`` when set; the plaintext goes."""
    if not spec.backup.encryption.enabled:
        return Sealed(path, path.name, sha256, size)
    target = path.with_name(path.name + crypto.SUFFIX)
    try:
        cipher_sha, cipher_size = crypto.encrypt_file(
            path, target, crypto.recipients(spec.backup.encryption)
        )
    finally:
        path.unlink(missing_ok=True)
    return Sealed(target, target.name, cipher_sha, cipher_size, crypto.ENCRYPTION)


def _dump(
    spec: Spec, tools: Tools, target: Target, out: Path, *, progress: Progress | None
) -> tuple[str, dict[str, dict[str, Any]], str, int]:
    """Dump into ``out``; return the server version, table counts, sha256 and size."""
    try:
        connection = target.connect()
    except psycopg.Error as exc:
        raise BackupError(
            f"cannot connect to {target.display}: {target.scrub(str(exc)).strip()}",
            hint="check [backup] database_url and that the database is reachable",
        ) from None
    with connection:
        version_num = int(_scalar(connection, "SHOW server_version_num"))
        server_version = str(_scalar(connection, "SHOW server_version"))
        tools.require(version_num // 10000)
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = str(_scalar(connection, "SELECT pg_export_snapshot()"))
        tables = _count_rows(connection, spec.backup.exact_count_limit)
        args = dump_args(tools, target, compress=spec.backup.compress, snapshot=snapshot)
        sha256, size = _stream(args, target, out, spec.backup.timeout, progress)
        connection.execute("COMMIT")
    return server_version, tables, sha256, size


def _scalar(connection: psycopg.Connection[Any], sql: str) -> Any:
    row = connection.execute(sql).fetchone()
    assert row is not None
    return row[0]


_TABLES = """
SELECT n.nspname, c.relname, c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, 2
"""


def _count_rows(connection: psycopg.Connection[Any], limit: int) -> dict[str, dict[str, Any]]:
    """Row counts of every user table: exact up to ``limit`` estimated rows, else estimated."""
    out: dict[str, dict[str, Any]] = {}
    for schema, table, estimate in connection.execute(_TABLES).fetchall():
        name = f"{schema}.{table}"
        if estimate < 0 or estimate <= limit:
            count = _scalar(connection, f"SELECT count(*) FROM {qualified(schema, table)}")
            out[name] = {"rows": int(count), "exact": True}
        else:
            out[name] = {"rows": int(estimate), "exact": False}
    return out


def _stream(
    args: list[str], target: Target, out: Path, timeout: float, progress: Progress | None
) -> tuple[str, int]:
    """Run pg_dump, writing its stdout to ``out`` and hashing it on the way."""
    digest = hashlib.sha256()
    size = 0
    errors: list[str] = []
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=target.env()
    )
    assert process.stdout is not None and process.stderr is not None
    drain = threading.Thread(target=_drain, args=(process.stderr, errors), daemon=True)
    drain.start()
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        with out.open("wb") as handle:
            while block := process.stdout.read(_CHUNK):
                handle.write(block)
                digest.update(block)
                size += len(block)
                if progress:
                    progress(size)
            handle.flush()
            os.fsync(handle.fileno())
        code = process.wait()
    finally:
        timer.cancel()
        with contextlib.suppress(OSError):
            process.kill()
        drain.join(5)
    if code != 0:
        reason = "timed out" if code < 0 and not errors else target.scrub(tail(errors))
        raise BackupError(
            f"pg_dump exited with code {code}: {reason}",
            hint="run pg_dump by hand with the same URL to see the full error",
        )
    return digest.hexdigest(), size


def _drain(stream: IO[bytes], lines: list[str]) -> None:
    for raw in stream:
        lines.append(raw.decode(errors="replace").rstrip())
