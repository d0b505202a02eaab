"""``tower backup``: run, list, verify, restore and prune backups; check the RPO."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from controltower.backup import pitr, records
from controltower.backup.config import run_config_backup
from controltower.backup.retention import prune
from controltower.backup.run import BackupResult, run_backup, spec_root
from controltower.backup.status import RpoStatus, rpo_status
from controltower.backup.verify import restore_backup, verify_backup
from controltower.cli.common import (
    EXIT_FAILED,
    EnvOption,
    Format,
    FormatOption,
    SpecOption,
    console,
    emit_json,
    epilog,
    load,
)
from controltower.clock import system_clock
from controltower.exceptions import UsageError
from controltower.spec import Spec
from controltower.store import Store
from controltower.units import format_duration, format_size

backup_app = typer.Typer(
    help="Back up PostgreSQL and the configuration; prove restores; watch the RPO.",
    no_args_is_help=True,
)


def open_store(spec: Spec) -> Store:
    url = spec.store.url.get_secret_value() if spec.store.url else None
    return Store.open(url, root=spec_root(spec))


def _print_result(result: BackupResult) -> None:
    if result.kind == "config":
        if result.unchanged:
            console.print(
                f"configuration unchanged since version {result.version} ({result.name})",
                markup=False,
                soft_wrap=True,
            )
        else:
            console.print(
                f"configuration version {result.version}: {result.name} "
                f"({format_size(result.size)}) -> {result.location}",
                markup=False,
                soft_wrap=True,
            )
        return
    console.print(
        f"backup {result.name}: {format_size(result.size)} in "
        f"{format_duration(result.duration)}, sha256 {result.sha256[:16]}…",
        markup=False,
        soft_wrap=True,
    )
    console.print(f"  stored at {result.location}", markup=False, soft_wrap=True)
    console.print(
        f"  {len(result.tables)} tables, "
        f"{sum(t['rows'] for t in result.tables.values())} rows, server {result.server_version}",
        markup=False,
        soft_wrap=True,
    )
    if result.heartbeat_error:
        console.print(
            f"  warning: {result.heartbeat_error}", style="yellow", markup=False, soft_wrap=True
        )


def run(
    spec: SpecOption = None,
    env: EnvOption = None,
    config_only: Annotated[
        bool, typer.Option("--config-only", help="Back up the configuration only.")
    ] = False,
    no_config: Annotated[
        bool, typer.Option("--no-config", help="Back up the database only.")
    ] = False,
    format: FormatOption = Format.TEXT,
) -> None:
    """Back up the database (pg_dump, checksummed) and the configuration, then ping the heartbeat."""
    loaded = load(spec, env)
    results: list[BackupResult] = []
    with open_store(loaded) as store:
        if not config_only:
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=format is Format.JSON,
            ) as progress:
                task = progress.add_task("dumping the database", total=None)

                def written(size: int) -> None:
                    progress.update(task, description=f"dumping the database: {format_size(size)}")

                if loaded.backup.method == "pitr":
                    progress.update(
                        task, description="pgBackRest backup (WAL is archived continuously)"
                    )
                    results.append(pitr.record_backup(loaded, store, spec_root(loaded)))
                else:
                    results.append(
                        run_backup(loaded, store, progress=written, actor="tower backup")
                    )
        if not no_config:
            results.append(run_config_backup(loaded, store, actor="tower backup"))
    if format is Format.JSON:
        emit_json({"ok": True, "backups": [r.to_dict() for r in results]})
        return
    for result in results:
        if result.kind.startswith("pitr-"):
            console.print(
                f"pgBackRest {result.kind.removeprefix('pitr-')} backup {result.name}: "
                f"{format_size(result.size)} in the repository, {format_duration(result.duration)}",
                markup=False,
                soft_wrap=True,
            )
            continue
        _print_result(result)


def list_(
    spec: SpecOption = None,
    env: EnvOption = None,
    kind: Annotated[str, typer.Option("--kind", help="database, config or all.")] = "database",
    format: FormatOption = Format.TEXT,
) -> None:
    """List backups, newest first, with their size, checksum and last verification."""
    if kind not in ("database", "config", "all"):
        raise UsageError(f"--kind must be database, config or all (got {kind!r})")
    loaded = load(spec, env)
    with open_store(loaded) as store:
        rows = records.rows(store, loaded, kind=None if kind == "all" else kind)
    if format is Format.JSON:
        emit_json({"backups": [records.describe_row(row) for row in rows]})
        return
    table = Table("name", "kind", "status", "started", "size", "duration", "verified")
    for row in rows:
        verified = (
            "never"
            if row.verify_ok is None
            else ("ok" if row.verify_ok else "FAILED")
            + (f" ({format_duration(row.restore_seconds or 0)})" if row.verify_ok else "")
        )
        table.add_row(
            row.name,
            row.kind + (f" v{row.version}" if row.kind == "config" else ""),
            row.status,
            row.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            format_size(row.size),
            format_duration(row.duration),
            verified,
        )
    console.print(table)
    console.print(
        f"{len(rows)} backup{'s' if len(rows) != 1 else ''}", markup=False, soft_wrap=True
    )


def verify(
    name: Annotated[str, typer.Argument(help="Backup name, or latest.")] = "latest",
    spec: SpecOption = None,
    env: EnvOption = None,
    scratch_url_env: Annotated[
        str | None,
        typer.Option(
            "--scratch-url-env",
            help="Name of an env var holding the URL of a server for the scratch database.",
        ),
    ] = None,
    identity_file: Annotated[
        Path | None,
        typer.Option(
            "--identity-file",
            help="age identity file that decrypts an encrypted backup "
            "(default: [backup.encryption] identity_env or identity_file).",
        ),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time",
            help='method = "pitr": restore the cluster as it was at this time '
            '("2026-12-01 10:42:00", UTC unless an offset is given) into a scratch copy.',
        ),
    ] = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Restore a backup into a scratch database, run sanity checks, time it against the RTO."""
    loaded = load(spec, env)
    if to_time is not None:
        _verify_pitr(loaded, _when(to_time), format)
        return
    scratch = _from_env(scratch_url_env) if scratch_url_env else None
    with (
        open_store(loaded) as store,
        console.status("restoring into a scratch database", spinner="dots")
        if format is Format.TEXT
        else _null(),
    ):
        result = verify_backup(
            loaded,
            store,
            name,
            scratch_url=scratch,
            identity_file=identity_file,
            actor="tower backup",
        )
    if format is Format.JSON:
        emit_json(result.to_dict())
    else:
        for finding in result.findings:
            mark = "ok  " if finding.ok else "FAIL"
            console.print(
                f"  {mark} {finding.name}: {finding.message}", markup=False, soft_wrap=True
            )
        verdict = "verified" if result.ok else "FAILED verification"
        console.print(
            f"backup {result.name} {verdict}: restored in "
            f"{format_duration(result.restore_seconds)} (RTO {format_duration(result.rto)}); "
            f"scratch database {result.scratch} dropped",
            style=None if result.ok else "red",
            markup=False,
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def restore(
    name: Annotated[str, typer.Argument(help="Backup name, or latest.")] = "latest",
    to_env: Annotated[
        str | None,
        typer.Option("--to-env", help="Name of the env var holding the target database URL."),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option("--to-time", help='method = "pitr": the time to recover to.'),
    ] = None,
    pg_data: Annotated[
        Path | None,
        typer.Option("--pg-data", help='method = "pitr": a new, empty data directory.'),
    ] = None,
    spec: SpecOption = None,
    env: EnvOption = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the target database first.")
    ] = False,
    clean: Annotated[
        bool,
        typer.Option("--clean", help="Drop objects in the target before restoring them."),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm a --clean restore over existing data.")
    ] = False,
    identity_file: Annotated[
        Path | None,
        typer.Option(
            "--identity-file", help="age identity file that decrypts an encrypted backup."
        ),
    ] = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Restore a backup into a database after proving its checksum."""
    if clean and not yes:
        raise UsageError("--clean drops objects in the target database; add --yes to confirm")
    loaded = load(spec, env)
    if to_time is not None or pg_data is not None:
        if to_time is None or pg_data is None:
            raise UsageError("a point-in-time restore needs both --to-time and --pg-data")
        when = _when(to_time)
        with (
            console.status("pgBackRest restore", spinner="dots")
            if format is Format.TEXT
            else _null()
        ):
            restored = pitr.restore_to_time(loaded, spec_root(loaded), when, pg_data)
        if format is Format.JSON:
            emit_json({"ok": True, "to_time": when.isoformat(), "pg_data": str(restored)})
            return
        console.print(
            f"restored the cluster as of {when.isoformat()} into {restored}; start PostgreSQL "
            "on it: recovery replays WAL to that time, then promotes",
            markup=False,
            soft_wrap=True,
        )
        return
    if to_env is None:
        raise UsageError("name the variable holding the target database URL with --to-env")
    target = _from_env(to_env)
    with (
        open_store(loaded) as store,
        console.status("checking the checksum, then restoring", spinner="dots")
        if format is Format.TEXT
        else _null(),
    ):
        result = restore_backup(
            loaded,
            store,
            name,
            target_url=target,
            create=create,
            clean=clean,
            identity_file=identity_file,
            actor="tower backup",
        )
    if format is Format.JSON:
        emit_json(result.to_dict())
        return
    console.print(
        f"restored {result.name} into {result.target} in {format_duration(result.seconds)}",
        markup=False,
        soft_wrap=True,
    )


def prune_(
    spec: SpecOption = None,
    env: EnvOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would go, delete nothing.")
    ] = False,
    format: FormatOption = Format.TEXT,
) -> None:
    """Apply retention: keep N hourly, daily and weekly backups, delete the rest."""
    loaded = load(spec, env)
    with open_store(loaded) as store:
        result = prune(loaded, store, dry_run=dry_run, actor="tower backup")
    if format is Format.JSON:
        emit_json(result.to_dict())
        return
    for name, reasons in result.kept.items():
        console.print(f"  keep   {name} ({', '.join(reasons)})", markup=False, soft_wrap=True)
    for name in result.deleted:
        console.print(f"  delete {name}", markup=False, soft_wrap=True)
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"kept {len(result.kept)}, {verb} {len(result.deleted)}", markup=False, soft_wrap=True
    )


def status(
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Say whether the newest good backup is within the RPO (exit 1 when it is not)."""
    loaded = load(spec, env)
    result: pitr.ArchiveStatus | RpoStatus
    if loaded.backup.method == "pitr":
        result = pitr.archive_status(loaded)
    else:
        with open_store(loaded) as store:
            result = rpo_status(loaded, store)
    if format is Format.JSON:
        emit_json(result.to_dict())
    else:
        console.print(
            ("ok: " if result.ok else "RPO BREACHED: ") + result.message,
            style=None if result.ok else "red",
            markup=False,
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def setup(
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Set up point-in-time recovery: pgbackrest.conf, archive settings, stanza, check."""
    loaded = load(spec, env)
    if loaded.backup.method != "pitr":
        raise UsageError('tower backup setup is for [backup] method = "pitr"')
    result = pitr.setup(loaded, spec_root(loaded))
    if format is Format.JSON:
        emit_json(result.to_dict())
    elif result.missing:
        console.print(
            f"wrote {result.config}; PostgreSQL is not archiving WAL yet. Add to postgresql.conf "
            "(or run these ALTER SYSTEM commands), restart, then run tower backup setup again:",
            markup=False,
            soft_wrap=True,
        )
        for name, value in result.missing.items():
            quoted = value.replace("'", "''")
            console.print(f"  ALTER SYSTEM SET {name} = '{quoted}';", markup=False, soft_wrap=True)
    else:
        console.print(
            f"wrote {result.config}; stanza {result.stanza} created and WAL archiving checked",
            markup=False,
            soft_wrap=True,
        )
    if result.missing:
        raise typer.Exit(EXIT_FAILED)


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f'--to-time {text!r} is not a time: write "2026-12-01 10:42:00" (UTC) '
            'or "2026-12-01T10:42:00+01:00"'
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _verify_pitr(spec: Spec, when: datetime, format: Format) -> None:
    with (
        console.status("restoring to a scratch cluster", spinner="dots")
        if format is Format.TEXT
        else _null()
    ):
        result = pitr.verify_to_time(spec, spec_root(spec), when)
    with open_store(spec) as store:
        records.record_pitr_verification(
            spec, store, result, clock=system_clock, actor="tower backup"
        )
    if format is Format.JSON:
        emit_json(result.to_dict())
    else:
        for name, ok, message in result.findings:
            console.print(
                f"  {'ok  ' if ok else 'FAIL'} {name}: {message}", markup=False, soft_wrap=True
            )
        verdict = "verified" if result.ok else "FAILED verification"
        console.print(
            f"point-in-time restore to {when.isoformat()} {verdict} in "
            f"{format_duration(result.restore_seconds)} (RTO {format_duration(result.rto)}); "
            "scratch cluster removed",
            markup=False,
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def _from_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise UsageError(f"environment variable {name} is not set")
    return value


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def register(app: typer.Typer) -> None:
    codes = (
        "Exit codes: 0 success; 1 the backup, verification or RPO check failed; "
        "2 bad usage or an invalid tower.toml."
    )
    backup_app.command(
        "run",
        epilog=epilog(
            ["tower backup run", "tower backup run --env production --format json"], codes
        ),
    )(run)
    backup_app.command(
        "list", epilog=epilog(["tower backup list", "tower backup list --kind all"], codes)
    )(list_)
    backup_app.command(
        "verify",
        epilog=epilog(
            [
                "tower backup verify",
                "tower backup verify example-20260101T000000Z-1a2b3c",
                'tower backup verify --to-time "2026-12-01 10:42:00"',
            ],
            codes,
        ),
    )(verify)
    backup_app.command(
        "restore",
        epilog=epilog(
            [
                "RESTORE_URL=postgresql://u:p@host/new tower backup restore latest "
                "--to-env RESTORE_URL --create",
                "tower backup restore NAME --to-env DATABASE_URL --clean --yes",
                'tower backup restore --to-time "2026-12-01 10:42:00" --pg-data /var/lib/pg/restored',
            ],
            codes,
        ),
    )(restore)
    backup_app.command(
        "prune", epilog=epilog(["tower backup prune --dry-run", "tower backup prune"], codes)
    )(prune_)
    backup_app.command(
        "setup",
        epilog=epilog(["tower backup setup", "tower backup setup --format json"], codes),
    )(setup)
    backup_app.command(
        "status", epilog=epilog(["tower backup status", "tower backup status --format json"], codes)
    )(status)
    app.add_typer(backup_app, name="backup")


__all__ = ["Path", "register"]
