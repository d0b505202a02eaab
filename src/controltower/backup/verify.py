"""Prove a backup restores: checksum first, then a restore into a scratch database.

``verify`` restores into a database made for the purpose, counts rows, runs
the spec's checks, compares the restore time with the RTO and drops the
scratch database whatever happened. ``restore`` checks the checksum the same
way and then restores where it is told.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select

from controltower.backup import crypto, records
from controltower.backup.archive import BackupCorrupt, BackupMeta, check_file
from controltower.backup.destinations import Destination, open_destination
from controltower.backup.pg import Target, Tools, qualified, quote_ident, restore_args, tail
from controltower.backup.run import database_url, spec_root
from controltower.clock import system_clock
from controltower.conditions import evaluate_all
from controltower.exceptions import BackupError
from controltower.spec import Spec
from controltower.store import Store, record_audit
from controltower.store.models.backup import Backup
from controltower.typing import Clock
from controltower.units import format_duration


@dataclass
class Finding:
    name: str
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class VerifyResult:
    name: str
    ok: bool
    restore_seconds: float
    rto: float
    scratch: str
    findings: list[Finding] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["findings"] = [f.to_dict() for f in self.findings]
        return out


@dataclass
class Located:
    meta: BackupMeta
    key: str
    row_id: int | None


def locate(
    spec: Spec, store: Store, dest: Destination, name: str = "latest", *, kind: str = "database"
) -> Located:
    """The backup called ``name`` (or the newest good one) and its metadata."""
    service = spec.service.name
    if name == "latest":
        good = records.rows(store, spec, kind=kind, status="ok")
        if good:
            name = good[0].name
        else:
            sidecars = sorted(o.key for o in dest.list(f"{service}/") if o.key.endswith(".json"))
            candidates = [k for k in sidecars if ("/config/" in k) == (kind == "config")]
            if not candidates:
                raise BackupError(
                    f"there is no backup of {service} yet",
                    hint="run `tower backup run` first",
                )
            name = candidates[-1].rsplit("/", 1)[1].removesuffix(".json")
    row = records.find_row(store, name)
    folder = f"{service}/config" if kind == "config" else service
    meta_key = f"{folder}/{name}.json"
    try:
        raw = dest.get_bytes(meta_key)
    except BackupError:
        raise BackupError(
            f"no backup named {name} at {dest.describe()}",
            hint="run `tower backup list` to see the backups that exist",
        ) from None
    meta = BackupMeta.from_json(raw, where=dest.describe(meta_key))
    if row is not None and row.sha256 and row.sha256 != meta.sha256:
        raise BackupCorrupt(
            f"backup {name}: its metadata file says sha256 {meta.sha256[:12]}… but the store "
            f"recorded {row.sha256[:12]}… when it was written",
            hint="the metadata was changed after the backup; do not trust this backup",
        )
    return Located(meta, f"{folder}/{meta.file}", row.id if row else None)


def fetch_checked(
    dest: Destination, located: Located, stack: ExitStack, identities: list[Any] | None = None
) -> Path:
    """A local path to the (decrypted) backup file, its checksums already proven."""
    path = dest.local_path(located.key)
    work: Path | None = None
    if path is None:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tower-restore-")))
        path = work / located.meta.file
        dest.get_file(located.key, path)
    check_file(path, located.meta)
    meta = located.meta
    if not meta.encryption:
        return path
    if work is None:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tower-restore-")))
    plain = work / meta.file.removesuffix(crypto.SUFFIX)
    sha256, size = crypto.decrypt_file(path, plain, identities or [], name=meta.name)
    if sha256 != meta.plain_sha256 or size != meta.plain_size:
        raise BackupCorrupt(
            f"backup {meta.name} decrypted to sha256 {sha256[:12]}… and {size} bytes, but "
            f"{meta.plain_sha256[:12]}… and {meta.plain_size} bytes were recorded",
            hint="do not restore it; verify an older backup with `tower backup verify <name>`",
        )
    return plain


def identities_for(
    spec: Spec,
    located: Located,
    *,
    environ: Mapping[str, str] | None,
    identity_file: Path | None,
) -> list[Any] | None:
    """The identities an encrypted backup needs, loaded before any database is touched."""
    if not located.meta.encryption:
        return None
    if located.meta.encryption != crypto.ENCRYPTION:
        raise BackupError(
            f"backup {located.meta.name} is encrypted with {located.meta.encryption!r}, "
            "which this tower cannot read",
            hint="upgrade tower",
        )
    return crypto.load_identities(
        spec.backup.encryption, root=spec_root(spec), environ=environ, identity_file=identity_file
    )


def _admin(target: Target) -> psycopg.Connection[Any]:
    admin = target.with_dbname("postgres")
    try:
        return admin.connect(autocommit=True)
    except psycopg.Error as exc:
        raise BackupError(
            f"cannot connect to {admin.display} to create a scratch database: "
            f"{target.scrub(str(exc)).strip()}",
            hint="set [backup] scratch_url to a server where tower may create databases",
        ) from None


def _create_database(admin: psycopg.Connection[Any], server: Target, name: str) -> None:
    """CREATE DATABASE ``name``, explaining a role that may not (no CREATEDB privilege)."""
    try:
        admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    except psycopg.errors.InsufficientPrivilege:
        raise BackupError(
            f"the role tower connects as on {server.display} may not create databases "
            f"(it lacks the CREATEDB privilege), so the database {name} cannot be created",
            hint="grant it (ALTER ROLE <role> CREATEDB), or set [backup] scratch_url to a "
            "server and role that may create databases (on Supabase, a separate Postgres)",
        ) from None
    except psycopg.Error as exc:
        raise BackupError(
            f"creating the database {name} on {server.display} failed: "
            f"{server.scrub(str(exc)).strip()}"
        ) from None


def _restore(tools: Tools, target: Target, archive: Path, *, jobs: int, clean: bool) -> None:
    result = subprocess.run(
        restore_args(tools, target, str(archive), jobs=jobs, clean=clean),
        capture_output=True,
        text=True,
        env=target.env(),
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(
            f"pg_restore into {target.display} failed: "
            f"{target.scrub(tail(result.stderr.splitlines()))}",
            hint="the backup may need roles or extensions the target lacks",
        )


def verify_backup(
    spec: Spec,
    store: Store,
    name: str = "latest",
    *,
    clock: Clock = system_clock,
    scratch_url: str | None = None,
    destination: Destination | None = None,
    environ: Mapping[str, str] | None = None,
    identity_file: Path | None = None,
    actor: str = "tower",
) -> VerifyResult:
    """Restore backup ``name`` into a scratch database and check what came back."""
    dest = destination or open_destination(
        spec.backup.destination, root=spec_root(spec), environ=environ
    )
    with ExitStack() as stack:
        if destination is None:
            stack.callback(dest.close)
        located = locate(spec, store, dest, name)
        identities = identities_for(spec, located, environ=environ, identity_file=identity_file)
        archive = fetch_checked(dest, located, stack, identities)
        server = Target.from_url(
            scratch_url
            or (spec.backup.scratch_url.get_secret_value() if spec.backup.scratch_url else "")
            or database_url(spec)
        )
        tools = Tools.find(spec.backup.pg_bin, environ)
        scratch_name = f"tower_verify_{secrets.token_hex(6)}"
        scratch = server.with_dbname(scratch_name)
        admin = stack.enter_context(_admin(server))
        _create_database(admin, server, scratch_name)
        stack.callback(
            admin.execute, f"DROP DATABASE IF EXISTS {quote_ident(scratch_name)} WITH (FORCE)"
        )
        begin = clock.monotonic()
        _restore(tools, scratch, archive, jobs=spec.backup.jobs, clean=False)
        seconds = clock.monotonic() - begin
        result = VerifyResult(
            name=located.meta.name,
            ok=True,
            restore_seconds=round(seconds, 3),
            rto=spec.backup.rto,
            scratch=scratch_name,
        )
        result.findings.append(
            Finding("checksum", True, f"sha256 {located.meta.sha256[:12]}… and size match")
        )
        within = seconds <= spec.backup.rto
        share = seconds / spec.backup.rto if spec.backup.rto else 0.0
        result.findings.append(
            Finding(
                "rto",
                within,
                f"restore took {format_duration(seconds)}, {share:.1%} of the RTO "
                f"{format_duration(spec.backup.rto)}",
            )
        )
        with scratch.connect(autocommit=True) as connection:
            result.findings.extend(_check_counts(connection, located.meta, result.tables))
            result.findings.extend(_run_checks(spec, connection))
        result.ok = all(f.ok for f in result.findings)
    _record(spec, store, located, result, clock=clock, actor=actor)
    return result


def _check_counts(
    connection: psycopg.Connection[Any], meta: BackupMeta, counts: dict[str, int]
) -> list[Finding]:
    findings: list[Finding] = []
    for table, info in sorted(meta.tables.items()):
        schema, _, name = table.partition(".")
        try:
            row = connection.execute(f"SELECT count(*) FROM {qualified(schema, name)}").fetchone()
        except psycopg.Error as exc:
            findings.append(Finding(f"rows {table}", False, f"cannot count: {exc}".strip()))
            continue
        restored = int(row[0]) if row else 0
        counts[table] = restored
        expected = int(info.get("rows", 0))
        if info.get("exact", True):
            ok = restored == expected
            message = f"{restored} rows" + ("" if ok else f", {expected} were backed up")
        else:
            ok = True
            message = f"{restored} rows (about {expected} estimated at backup time)"
        findings.append(Finding(f"rows {table}", ok, message))
    if not meta.tables:
        findings.append(Finding("rows", True, "the backup holds no tables"))
    return findings


def check_rows(
    spec: Spec, connection: psycopg.Connection[Any]
) -> tuple[dict[str, int], list[tuple[str, bool, str]]]:
    """Row counts of every user table of a restored copy, and the spec's checks on it."""
    counts: dict[str, int] = {}
    findings: list[tuple[str, bool, str]] = []
    tables = connection.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"
    ).fetchall()
    for schema, name in tables:
        row = connection.execute(f"SELECT count(*) FROM {qualified(schema, name)}").fetchone()
        counts[f"{schema}.{name}"] = int(row[0]) if row else 0
    findings.append(("rows", True, f"{len(counts)} tables, {sum(counts.values())} rows"))
    findings.extend((f.name, f.ok, f.message) for f in _run_checks(spec, connection))
    return counts, findings


def _run_checks(spec: Spec, connection: psycopg.Connection[Any]) -> list[Finding]:
    findings: list[Finding] = []
    checks: list[tuple[str, str, list[Any]]] = [
        (check.name, check.query, list(check.conditions)) for check in spec.backup.checks
    ]
    checks += [(f"query {i + 1}", q, []) for i, q in enumerate(spec.backup.verify_queries)]
    for name, query, conditions in checks:
        try:
            cursor = connection.execute(query)
            rows = cursor.fetchall() if cursor.description else []
            columns = [c.name for c in cursor.description or []]
        except psycopg.Error as exc:
            findings.append(Finding(name, False, f"query failed: {str(exc).strip()}"))
            continue
        first = rows[0] if rows else None
        context = {
            "rows": len(rows),
            "value": first[0] if first else None,
            "row": dict(zip(columns, first, strict=False)) if first else {},
        }
        if not conditions:
            ok = bool(rows)
            findings.append(Finding(name, ok, f"{len(rows)} rows" if ok else "no rows came back"))
            continue
        results = evaluate_all(conditions, context)
        ok = all(r.ok for r in results)
        findings.append(Finding(name, ok, "; ".join(r.message for r in results)))
    return findings


def _record(
    spec: Spec,
    store: Store,
    located: Located,
    result: VerifyResult,
    *,
    clock: Clock,
    actor: str,
) -> None:
    row_id = located.row_id
    if row_id is None:
        row_id = records.import_row(
            store, spec, located.meta, destination=spec.backup.destination.type, key=located.key
        )
    with store.session() as session:
        records.add_verification(
            session,
            row_id,
            at=clock.now(),
            ok=result.ok,
            restore_seconds=result.restore_seconds,
            rto=result.rto,
            detail={"findings": [f.to_dict() for f in result.findings]},
            actor=actor,
            audit={"restore_seconds": result.restore_seconds, "rto": result.rto},
        )


@dataclass
class RestoreResult:
    name: str
    target: str
    seconds: float
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def restore_backup(
    spec: Spec,
    store: Store,
    name: str,
    *,
    target_url: str,
    create: bool = False,
    clean: bool = False,
    clock: Clock = system_clock,
    destination: Destination | None = None,
    environ: Mapping[str, str] | None = None,
    identity_file: Path | None = None,
    actor: str = "tower",
) -> RestoreResult:
    """Restore backup ``name`` into ``target_url`` after proving its checksum."""
    dest = destination or open_destination(
        spec.backup.destination, root=spec_root(spec), environ=environ
    )
    target = Target.from_url(target_url)
    with ExitStack() as stack:
        if destination is None:
            stack.callback(dest.close)
        located = locate(spec, store, dest, name)
        identities = identities_for(spec, located, environ=environ, identity_file=identity_file)
        archive = fetch_checked(dest, located, stack, identities)
        tools = Tools.find(spec.backup.pg_bin, environ)
        if create:
            with _admin(target) as admin:
                _create_database(admin, target, target.dbname)
        begin = clock.monotonic()
        _restore(tools, target, archive, jobs=spec.backup.jobs, clean=clean)
        seconds = clock.monotonic() - begin
    with store.session() as session:
        row = session.scalar(select(Backup).where(Backup.name == located.meta.name))
        record_audit(
            session,
            actor=actor,
            action="backup.restored",
            service=row.service_id if row else None,
            subject=located.meta.name,
            detail={"target": target.display, "seconds": round(seconds, 3)},
        )
    return RestoreResult(located.meta.name, target.display, round(seconds, 3), create)
