"""Point-in-time recovery with pgBackRest: continuous WAL archiving plus full/differential backups.

tower drives pgBackRest rather than re-implementing it. This module holds the
pure builders (``pgbackrest.conf``, argument lists, the ``archive_command``)
and the one layer that runs them: ``setup`` (config file, archive settings
checked, ``stanza-create``, ``check``), ``backup`` (full when the last full is
older than ``full_every``, differential otherwise), ``restore_to_time`` (a new
data directory, recovered to a timestamp) and ``verify_to_time`` (that
restore into a scratch directory, started on a free port until promoted,
checked like a dump's restore, then removed). ``archive_status`` reads
``pg_stat_archiver`` to give the RPO actually achieved.

pgBackRest and PostgreSQL refuse to run as root; when tower runs as root the
commands run as the owner of the data directory (``runuser``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from controltower.backup.pg import Target, tail
from controltower.clock import system_clock
from controltower.exceptions import BackupError
from controltower.spec import Spec
from controltower.spec.backup import PitrSpec
from controltower.typing import Clock

if TYPE_CHECKING:
    from controltower.backup.run import BackupResult
    from controltower.store import Store

WAL_SEGMENT = 16 * 1024 * 1024


@dataclass(frozen=True)
class Pitr:
    """Everything the pgBackRest commands need, resolved from the spec."""

    stanza: str
    pg_data: Path
    port: int
    socket: str
    user: str
    binary: str
    config: Path
    repo: dict[str, str]
    retention_full: int
    process_max: int
    pg_bin: Path

    @classmethod
    def from_spec(cls, spec: Spec, root: Path) -> Pitr:
        pitr: PitrSpec = spec.backup.pitr
        if not pitr.pg_data:
            raise BackupError(
                '[backup] method = "pitr" needs [backup.pitr] pg_data',
                hint="set pg_data to the data directory of the cluster (SHOW data_directory)",
            )
        destination = spec.backup.destination
        if destination.type == "s3":
            endpoint = urlsplit(destination.endpoint) if destination.endpoint else None
            repo = {
                "repo1-type": "s3",
                "repo1-s3-bucket": destination.bucket,
                "repo1-s3-region": destination.region,
                "repo1-s3-endpoint": (endpoint.hostname or "") if endpoint else "s3.amazonaws.com",
                "repo1-s3-uri-style": "path" if endpoint else "host",
                "repo1-path": "/" + "/".join(p for p in (destination.prefix, "pgbackrest") if p),
            }
            if endpoint and endpoint.port:
                repo["repo1-storage-port"] = str(endpoint.port)
            if endpoint and endpoint.scheme == "http":
                repo["repo1-storage-verify-tls"] = "n"
        else:
            path = Path(destination.path)
            if not path.is_absolute():
                path = root / path
            repo = {"repo1-path": str((path / "pgbackrest").resolve())}
        config = Path(pitr.config) if pitr.config else root / ".tower" / "pgbackrest.conf"
        if not config.is_absolute():
            config = root / config
        return cls(
            stanza=pitr.stanza or spec.service.name,
            pg_data=Path(pitr.pg_data),
            port=pitr.port,
            socket=pitr.socket,
            user=pitr.user,
            binary=pitr.pgbackrest,
            config=config,
            repo=repo,
            retention_full=pitr.retention_full,
            process_max=pitr.process_max,
            pg_bin=Path(pitr.pg_bin) if pitr.pg_bin else _pg_bin(),
        )


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: p.parts)
    if found:
        return found[-1].parent
    postgres = shutil.which("postgres")
    return Path(postgres).parent if postgres else Path("/usr/bin")


def config_text(pitr: Pitr) -> str:
    """The pgbackrest.conf tower writes (no secrets: S3 keys travel in the environment)."""
    lines = ["# written by tower; edit [backup.pitr] in tower.toml instead", "[global]"]
    lines += [f"{key}={value}" for key, value in pitr.repo.items()]
    lines += [
        f"repo1-retention-full={pitr.retention_full}",
        "start-fast=y",
        f"process-max={pitr.process_max}",
        "compress-type=zst",
        "log-level-console=warn",
        "log-level-file=off",
        f"lock-path={pitr.config.parent / 'pgbackrest-lock'}",
        "",
        f"[{pitr.stanza}]",
        f"pg1-path={pitr.pg_data}",
        f"pg1-port={pitr.port}",
        f"pg1-socket-path={pitr.socket}",
        f"pg1-user={pitr.user}",
        "",
    ]
    return "\n".join(lines)


def archive_command(pitr: Pitr) -> str:
    return f"{pitr.binary} --config={pitr.config} --stanza={pitr.stanza} archive-push %p"


def settings(pitr: Pitr, archive_timeout: float) -> dict[str, str]:
    """The postgresql.conf settings continuous archiving needs."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": archive_command(pitr),
        "archive_timeout": f"{int(archive_timeout)}s",
    }


def command(pitr: Pitr, *args: str) -> list[str]:
    return [pitr.binary, f"--config={pitr.config}", f"--stanza={pitr.stanza}", *args]


def backup_args(pitr: Pitr, kind: str) -> list[str]:
    return command(pitr, "backup", f"--type={kind}")


def restore_args(pitr: Pitr, target: Path, when: datetime | None) -> list[str]:
    """Restore to ``when``, or with ``None`` to the end of the archived WAL (the latest)."""
    if when is None:
        return command(pitr, "restore", f"--pg1-path={target}", "--archive-mode=off")
    return command(
        pitr,
        "restore",
        f"--pg1-path={target}",
        "--type=time",
        f"--target={when.astimezone(UTC).isoformat(sep=' ')}",
        "--target-action=promote",
        "--archive-mode=off",
    )


def _owner(path: Path) -> str | None:
    """The user to run as: the data directory's owner when tower runs as root."""
    if os.geteuid() != 0:
        return None
    try:
        uid = path.stat().st_uid
    except OSError:
        return None
    return None if uid == 0 else pwd.getpwuid(uid).pw_name


def run(
    pitr: Pitr,
    args: list[str],
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = 6 * 3600.0,
) -> str:
    """Run a pgBackRest or PostgreSQL command (as the data directory's owner); its stdout."""
    owner = _owner(pitr.pg_data)
    full = ["runuser", "-u", owner, "--", *args] if owner else args
    env = {**os.environ, **(environ or {})}
    try:
        result = subprocess.run(
            full, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise BackupError(
            f"{args[0]} is not installed",
            hint="install pgBackRest (apt-get install pgbackrest) or set [backup.pitr] pgbackrest",
        ) from None
    except subprocess.TimeoutExpired:
        raise BackupError(
            f"{Path(args[0]).name} {_verb(args)} timed out after {timeout:.0f}s"
        ) from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).splitlines()
        raise BackupError(
            f"{Path(args[0]).name} {_verb(args)} failed (exit {result.returncode}): {tail(lines)}",
            hint="run the same command by hand to see the whole log",
        )
    return result.stdout


def _verb(args: list[str]) -> str:
    return next((a for a in args[1:] if not a.startswith("-")), "")


def write_config(pitr: Pitr) -> Path:
    """Write pgbackrest.conf (0640, readable by the data directory's owner)."""
    pitr.config.parent.mkdir(parents=True, exist_ok=True)
    temp = pitr.config.with_name(f".{pitr.config.name}.partial")
    temp.write_text(config_text(pitr))
    temp.chmod(0o640)
    owner = _owner(pitr.pg_data)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(temp, 0, entry.pw_gid)
        lock = pitr.config.parent / "pgbackrest-lock"
        lock.mkdir(exist_ok=True)
        os.chown(lock, entry.pw_uid, entry.pw_gid)
        repo = pitr.repo.get("repo1-path", "")
        if "repo1-type" not in pitr.repo and repo:
            Path(repo).mkdir(parents=True, exist_ok=True)
            os.chown(repo, entry.pw_uid, entry.pw_gid)
    elif "repo1-type" not in pitr.repo:
        Path(pitr.repo["repo1-path"]).mkdir(parents=True, exist_ok=True)
    os.replace(temp, pitr.config)
    return pitr.config


@dataclass
class SetupResult:
    config: Path
    missing: dict[str, str]
    stanza: str
    checked: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": str(self.config),
            "missing_settings": self.missing,
            "stanza": self.stanza,
            "checked": self.checked,
        }


def missing_settings(spec: Spec, pitr: Pitr) -> dict[str, str]:
    """Archive settings of the running server that differ from what PITR needs."""
    wanted = settings(pitr, spec.backup.pitr.archive_timeout)
    target = Target.from_url(_url(spec))
    out: dict[str, str] = {}
    with _connect(target) as connection:
        for name, value in wanted.items():
            row = connection.execute(f"SHOW {name}").fetchone()
            current = str(row[0]) if row else ""
            if name == "archive_timeout":
                if _seconds(current) == 0 or _seconds(current) > _seconds(value):
                    out[name] = value
            elif current != value:
                out[name] = value
    return out


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400}
    for unit, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * factor
    return float(text) if text.isdigit() else 0.0


def setup(spec: Spec, root: Path, *, environ: Mapping[str, str] | None = None) -> SetupResult:
    """Write the config, then create the stanza and check archiving when the server is ready."""
    pitr = Pitr.from_spec(spec, root)
    path = write_config(pitr)
    missing = missing_settings(spec, pitr)
    if missing:
        return SetupResult(path, missing, pitr.stanza, False)
    run(pitr, command(pitr, "stanza-create"), environ=environ, timeout=600)
    run(pitr, command(pitr, "check"), environ=environ, timeout=600)
    return SetupResult(path, {}, pitr.stanza, True)


def info(pitr: Pitr, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = json.loads(run(pitr, command(pitr, "info", "--output=json"), environ=environ) or "[]")
    for stanza in raw:
        if stanza.get("name") == pitr.stanza:
            return dict(stanza)
    return {}


@dataclass
class PitrBackup:
    label: str
    kind: str
    started_at: datetime
    finished_at: datetime
    size: int
    repo_size: int
    wal_start: str
    wal_stop: str

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat()
        return out


def backups(stanza: Mapping[str, Any]) -> list[PitrBackup]:
    """The backup sets pgBackRest reports, oldest first."""
    out = []
    for item in stanza.get("backup", []):
        stamp = item.get("timestamp", {})
        out.append(
            PitrBackup(
                label=str(item["label"]),
                kind=str(item.get("type", "")),
                started_at=datetime.fromtimestamp(int(stamp.get("start", 0)), UTC),
                finished_at=datetime.fromtimestamp(int(stamp.get("stop", 0)), UTC),
                size=int(item.get("info", {}).get("size", 0)),
                repo_size=int(item.get("info", {}).get("repository", {}).get("delta", 0)),
                wal_start=str(item.get("archive", {}).get("start", "")),
                wal_stop=str(item.get("archive", {}).get("stop", "")),
            )
        )
    return out


def next_kind(spec: Spec, sets: list[PitrBackup], now: datetime) -> str:
    """Full when there is none or the newest full is older than ``full_every``; else diff."""
    fulls = [b for b in sets if b.kind == "full"]
    if not fulls:
        return "full"
    age = (now - fulls[-1].finished_at).total_seconds()
    return "full" if age >= spec.backup.pitr.full_every else "diff"


def backup(
    spec: Spec,
    root: Path,
    *,
    kind: str = "",
    clock: Clock = system_clock,
    environ: Mapping[str, str] | None = None,
) -> PitrBackup:
    """One full or differential backup; WAL archiving runs continuously beside it."""
    pitr = Pitr.from_spec(spec, root)
    write_config(pitr)
    chosen = kind or next_kind(spec, backups(info(pitr, environ=environ)), clock.now())
    run(pitr, backup_args(pitr, chosen), environ=environ, timeout=spec.backup.timeout)
    sets = backups(info(pitr, environ=environ))
    if not sets:
        raise BackupError("pgBackRest reported no backup after a successful run")
    return sets[-1]


def record_backup(
    spec: Spec, store: Store, root: Path, *, clock: Clock = system_clock
) -> BackupResult:
    """``tower backup run`` and the schedule with ``method = "pitr"``: one pgBackRest backup
    (full or differential), recorded in the store as a ``backups`` row of kind ``pitr``."""
    from controltower.backup import records
    from controltower.backup.run import BackupResult

    made = backup(spec, root, clock=clock)
    location = Pitr.from_spec(spec, root).repo.get("repo1-path", "")
    records.pitr_row(store, spec, made, location=location)
    return BackupResult(
        name=made.label,
        kind=f"pitr-{made.kind}",
        ok=True,
        size=made.repo_size,
        duration=(made.finished_at - made.started_at).total_seconds(),
        location=location,
    )


@dataclass
class ArchiveStatus:
    ok: bool
    rpo: float
    age: float | None
    last_archived: str
    last_archived_at: datetime | None
    failing: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["last_archived_at"] = (
            self.last_archived_at.isoformat() if self.last_archived_at else None
        )
        return out


def segment_end(name: str, segment: int = WAL_SEGMENT) -> int:
    """The LSN just past the WAL segment ``name`` (timeline, log, segment in hex)."""
    log, seg = int(name[8:16], 16), int(name[16:24], 16)
    return (log << 32) + (seg + 1) * segment


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def archive_status(spec: Spec, *, clock: Clock = system_clock) -> ArchiveStatus:
    """The RPO achieved now: 0 when every WAL byte written is archived, else its age."""
    rpo = spec.backup.rpo
    target = Target.from_url(_url(spec))
    with _connect(target) as connection:
        row = connection.execute(
            "SELECT last_archived_wal, last_archived_time, last_failed_wal, last_failed_time, "
            "pg_current_wal_lsn()::text, current_setting('wal_segment_size') "
            "FROM pg_stat_archiver"
        ).fetchone()
    assert row is not None
    wal, at, _failed_wal, failed_at, current, segment_text = row
    failing = bool(failed_at and (at is None or failed_at > at))
    if not wal or at is None:
        return ArchiveStatus(
            False,
            rpo,
            None,
            "",
            None,
            failing,
            f"WAL archiving is failing since {failed_at:%Y-%m-%d %H:%M:%S} and nothing is archived"
            if failing
            else "no WAL has been archived yet: run tower backup setup",
        )
    segment = _size(str(segment_text))
    pending = parse_lsn(str(current)) - segment_end(str(wal), segment)
    age = 0.0 if pending <= 0 else max(0.0, (clock.now() - at).total_seconds())
    ok = age <= rpo and not failing
    why = "archiving is failing" if failing else ("within" if age <= rpo else "older than")
    message = (
        f"WAL archived up to {wal}; unarchived changes are {age:.0f}s old, {why} the RPO {rpo:.0f}s"
        if not failing
        else f"WAL archiving is failing since {failed_at:%Y-%m-%d %H:%M:%S}; last archived {wal}"
    )
    return ArchiveStatus(ok, rpo, round(age, 3), str(wal), at, failing, message)


def _size(text: str) -> int:
    units = {"kB": 1024, "MB": 1024**2, "GB": 1024**3}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text) if text.isdigit() else WAL_SEGMENT


def _url(spec: Spec) -> str:
    url = spec.backup.database_url.get_secret_value() if spec.backup.database_url else ""
    if not url:
        raise BackupError(
            "no database to check: [backup] database_url is empty",
            hint='set database_url = "${DATABASE_URL}" in [backup]',
        )
    return url


def _connect(target: Target) -> psycopg.Connection[Any]:
    try:
        return target.connect(autocommit=True)
    except psycopg.Error as exc:
        raise BackupError(
            f"cannot connect to {target.display}: {target.scrub(str(exc)).strip()}",
            hint="check [backup] database_url and that the database is reachable",
        ) from None


def restore_to_time(
    spec: Spec,
    root: Path,
    when: datetime | None,
    target: Path,
    *,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Restore the cluster as it was at ``when`` (``None``: as far as WAL is archived) into
    the empty directory ``target``."""
    pitr = Pitr.from_spec(spec, root)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty", hint="restore into a new, empty directory")
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)
    owner = _owner(pitr.pg_data)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(target, entry.pw_uid, entry.pw_gid)
    write_config(pitr)
    run(pitr, restore_args(pitr, target, when), environ=environ, timeout=spec.backup.timeout)
    return target


@dataclass
class PitrVerify:
    ok: bool
    when: datetime
    restore_seconds: float
    rto: float
    tables: dict[str, int] = field(default_factory=dict)
    findings: list[tuple[str, bool, str]] = field(default_factory=list)
    backup: PitrBackup | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "to_time": self.when.isoformat(),
            "backup": self.backup.label if self.backup else None,
            "restore_seconds": self.restore_seconds,
            "rto": self.rto,
            "tables": self.tables,
            "findings": [{"name": n, "ok": ok, "message": m} for n, ok, m in self.findings],
        }


def starting_set(sets: list[PitrBackup], when: datetime | None) -> PitrBackup | None:
    """The backup set a restore to ``when`` starts from: the newest finished by then."""
    before = [b for b in sets if when is None or b.finished_at <= when]
    return before[-1] if before else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verify_to_time(
    spec: Spec,
    root: Path,
    when: datetime | None,
    *,
    clock: Clock = system_clock,
    environ: Mapping[str, str] | None = None,
    database: str = "",
) -> PitrVerify:
    """Restore to ``when`` in a scratch directory, start it until promoted, check, remove it.

    ``when = None`` restores as far as WAL is archived, which is what a drill "as of now"
    means: a target time past the last archived commit is never reached, and PostgreSQL
    stops recovery with an error instead of promoting.
    """
    from controltower.backup.verify import check_rows

    pitr = Pitr.from_spec(spec, root)
    source = Target.from_url(_url(spec))
    dbname = database or source.dbname
    scratch = Path(tempfile.mkdtemp(prefix="tower-pitr-"))
    owner = _owner(pitr.pg_data)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(scratch, entry.pw_uid, entry.pw_gid)
    data = scratch / "data"
    port = _free_port()
    pg_ctl = str(pitr.pg_bin / "pg_ctl")
    started = False
    begin = clock.monotonic()
    try:
        chosen = starting_set(backups(info(pitr, environ=environ)), when)
        restore_to_time(spec, root, when, data, environ=environ)
        hba = scratch / "pg_hba.conf"
        hba.write_text("local all all trust\n")
        if owner:
            os.chown(hba, entry.pw_uid, entry.pw_gid)
        options = (
            f"-p {port} -c listen_addresses='' -c unix_socket_directories='{scratch}' "
            f"-c archive_mode=off -c hot_standby=on -c hba_file='{hba}'"
        )
        start = [pg_ctl, "-D", str(data), "-l", str(scratch / "postgres.log"), "-o", options]
        start += ["-w", "-t", str(int(spec.backup.rto)), "start"]
        run(pitr, start, timeout=spec.backup.rto + 60)
        started = True
        user = str(conninfo_to_dict(source.conninfo).get("user") or pitr.user)
        conninfo = f"host={scratch} port={port} dbname={dbname} user={user}"
        _wait_promoted(conninfo, clock, deadline=spec.backup.rto, data=data)
        seconds = clock.monotonic() - begin
        result = PitrVerify(
            True, when or clock.now(), round(seconds, 3), spec.backup.rto, backup=chosen
        )
        within = seconds <= spec.backup.rto
        upto = when.isoformat() if when else "the last archived WAL"
        result.findings.append(("rto", within, f"restored to {upto} in {seconds:.1f}s"))
        with psycopg.connect(conninfo, autocommit=True) as connection:
            result.tables, findings = check_rows(spec, connection)
        result.findings.extend(findings)
        result.ok = all(ok for _, ok, _ in result.findings)
        return result
    finally:
        if started:
            with contextlib.suppress(BackupError):
                run(pitr, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)


def _wait_promoted(conninfo: str, clock: Clock, *, deadline: float, data: Path) -> None:
    """Wait, with backoff, until recovery reached its target and the copy was promoted;
    a copy whose server stopped (recovery failed) is reported at once, with its log."""
    end = clock.monotonic() + deadline
    delay = 0.05
    last = ""
    while clock.monotonic() < end:
        if not (data / "postmaster.pid").exists():
            log = data.parent / "postgres.log"
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            fatal = [line for line in lines if "FATAL" in line or "ERROR" in line]
            raise BackupError(
                f"the restored copy stopped during recovery: {tail(fatal or lines, 3)}",
                hint="the target time may be later than the last archived WAL",
            )
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
                row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
                if row and row[0] is False:
                    return
                last = "still recovering"
        except psycopg.Error as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        clock.sleep(delay)
        delay = min(delay * 2, 1.0)
    raise BackupError(
        f"the restored copy did not finish recovery within {deadline:.0f}s ({last})",
        hint="the target time may be later than the last archived WAL",
    )
