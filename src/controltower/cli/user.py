"""``tower user``: people who may log in to the dashboard (scrypt hashes in the store)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from controltower.cli.common import (
    EnvOption,
    Format,
    FormatOption,
    SpecOption,
    console,
    emit_json,
    epilog,
    load,
)
from controltower.dashboard.auth import Accounts
from controltower.exceptions import UsageError
from controltower.server.factory import open_store

app = typer.Typer(help="Dashboard users: add, list, remove.", no_args_is_help=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "--store",
        help="Store URL (default: [store] url, $TOWER_DATABASE_URL, or .tower/tower.db "
        "beside tower.toml): the store `tower serve` uses.",
        show_default=False,
    ),
]


def _accounts(spec: Path | None, env: str | None, store_url: str | None) -> Accounts:
    return Accounts(open_store(load(spec, env), store_url))


@app.command(
    "add",
    epilog=epilog(
        ["tower user add ana", 'echo "$PASSWORD" | tower user add ci --password-stdin'],
        "Exit codes: 0 added or password changed; 2 bad input (a password needs 10 "
        "characters or more) or an invalid tower.toml.",
    ),
)
def add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Add a dashboard user, or set a new password for an existing one."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not name.strip():
        raise UsageError("a user needs a name")
    accounts = _accounts(spec, env, store)
    try:
        accounts.add_user(name.strip(), password)
    finally:
        accounts.store.close()
    if format is Format.JSON:
        emit_json({"user": name.strip(), "added": True})
    else:
        console.print(f"user {name.strip()} can log in to the dashboard", markup=False)


@app.command(
    "list",
    epilog=epilog(["tower user list", "tower user list --format json"], "Exit codes: 0 always."),
)
def list_users(
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """List dashboard users."""
    accounts = _accounts(spec, env, store)
    try:
        names = accounts.users()
    finally:
        accounts.store.close()
    if format is Format.JSON:
        emit_json({"users": names})
        return
    for name in names or []:
        console.print(name, markup=False)
    if not names:
        console.print("no users yet: tower user add NAME", markup=False)


@app.command(
    "remove",
    epilog=epilog(
        ["tower user remove ana"], "Exit codes: 0 removed; 1 no such user; 2 invalid tower.toml."
    ),
)
def remove(
    name: Annotated[str, typer.Argument(help="Login name.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Remove a dashboard user and end their sessions."""
    accounts = _accounts(spec, env, store)
    try:
        removed = accounts.remove_user(name)
    finally:
        accounts.store.close()
    if format is Format.JSON:
        emit_json({"user": name, "removed": removed})
    else:
        console.print(f"removed {name}" if removed else f"no user {name}", markup=False)
    if not removed:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="user")
