"""PostgreSQL tools: where pg_dump lives, how to call it without leaking the password.

Builders here are pure: they return argument lists and environments and are
tested by equality. The password never reaches argv; it travels in
``PGPASSWORD`` to the child process only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from controltower.exceptions import BackupError
from controltower.store.engine import redact_url

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Target:
    """A database to connect to: conninfo without the password, and the password apart."""

    conninfo: str
    password: str
    dbname: str
    display: str

    @classmethod
    def from_url(cls, url: str) -> Target:
        if url.startswith("postgresql+psycopg://"):
            url = "postgresql://" + url.split("://", 1)[1]
        try:
            params = conninfo_to_dict(url)
        except Exception:
            raise BackupError(
                f"{redact_url(url)} is not a PostgreSQL URL",
                hint="write it as postgresql://user:password@host:5432/dbname",
            ) from None
        password = str(params.pop("password", "") or "")
        dbname = str(params.get("dbname") or params.get("user") or "postgres")
        params["dbname"] = dbname
        shown = make_conninfo("", **params)
        return cls(conninfo=shown, password=password, dbname=dbname, display=_display(url, params))

    def with_dbname(self, dbname: str) -> Target:
        params = conninfo_to_dict(self.conninfo)
        params["dbname"] = dbname
        info = make_conninfo("", **params)
        return Target(info, self.password, dbname, _display("", params))

    def connect(self, *, autocommit: bool = False, timeout: int = 15) -> psycopg.Connection[Any]:
        """Open a connection, password included (it never enters ``conninfo``)."""
        extra: dict[str, Any] = {"password": self.password} if self.password else {}
        return psycopg.connect(
            self.conninfo, autocommit=autocommit, connect_timeout=timeout, **extra
        )

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a child process: ``PGPASSWORD`` set, nothing else leaked."""
        env = dict(os.environ if base is None else base)
        env.pop("PGPASSWORD", None)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def scrub(self, text: str) -> str:
        """``text`` with the password removed, for messages built from tool output."""
        return text.replace(self.password, "***") if self.password else text


def _display(url: str, params: Mapping[str, object]) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        return redact_url("postgresql://" + url.split("://", 1)[1])
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = params.get("user") or ""
    who = f"{user}@" if user else ""
    return f"postgresql://{who}{host}:{port}/{params.get('dbname', '')}"


@dataclass(frozen=True)
class Tools:
    pg_dump: str
    pg_restore: str
    version: int

    @classmethod
    def find(cls, pg_bin: str = "", environ: Mapping[str, str] | None = None) -> Tools:
        """pg_dump and pg_restore: ``pg_bin``, ``$TOWER_PG_BIN``, the newest installed, or PATH."""
        env = os.environ if environ is None else environ
        folders: list[Path] = []
        for chosen in (pg_bin, env.get("TOWER_PG_BIN", "")):
            if chosen:
                folders.append(Path(chosen))
        installed = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: _major(p.parent.name),
            reverse=True,
        )
        folders.extend(installed)
        for folder in folders:
            dump, restore = folder / "pg_dump", folder / "pg_restore"
            if dump.is_file() and restore.is_file():
                return cls(str(dump), str(restore), tool_version(str(dump)))
        dump_path, restore_path = shutil.which("pg_dump"), shutil.which("pg_restore")
        if dump_path and restore_path:
            return cls(dump_path, restore_path, tool_version(dump_path))
        raise BackupError(
            "pg_dump and pg_restore were not found",
            hint="install the PostgreSQL client (apt-get install postgresql-client) "
            "or set [backup] pg_bin to the folder that holds them",
        )

    def require(self, server_major: int) -> None:
        if self.version < server_major:
            raise BackupError(
                f"pg_dump {self.version} cannot dump a PostgreSQL {server_major} server",
                hint=f"install the PostgreSQL {server_major} client tools "
                "and point [backup] pg_bin at them",
            )


def _major(text: str) -> int:
    match = _VERSION.search(text)
    return int(match.group(1)) if match else 0


def tool_version(binary: str) -> int:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError as exc:
        raise BackupError(f"{binary} cannot run: {exc}") from None
    return _major(out)


def dump_args(
    tools: Tools, target: Target, *, compress: int, snapshot: str | None = None
) -> list[str]:
    """pg_dump in custom format to stdout; the password is not in here."""
    args = [
        tools.pg_dump,
        "--format=custom",
        f"--compress={compress}",
        "--no-password",
        f"--dbname={target.conninfo}",
    ]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    return args


def restore_args(
    tools: Tools, target: Target, archive: str, *, jobs: int = 1, clean: bool = False
) -> list[str]:
    """pg_restore of ``archive`` into ``target``, without owners or grants of the source."""
    args = [
        tools.pg_restore,
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        f"--jobs={jobs}",
        f"--dbname={target.conninfo}",
    ]
    if clean:
        args += ["--clean", "--if-exists"]
    return [*args, archive]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def tail(lines: Sequence[str], count: int = 20) -> str:
    return "\n".join(line for line in lines[-count:] if line.strip())
