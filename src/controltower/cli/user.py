"""``tower user``: people who may log in to the dashboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from controltower.cli.common import Format, FormatOption, console, emit_json, epilog
from controltower.exceptions import UsageError
from controltower.store import Store

app = typer.Typer(help="Dashboard users: add, list, remove.", no_args_is_help=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (default: $TOWER_DATABASE_URL or .tower/tower.db).",
        show_default=False,
    ),
]


def _accounts(store_url: str | None):  # type: ignore[no-untyped-def]
    from controltower.dashboard.auth import Accounts

    return Accounts(Store.open(store_url, root=Path.cwd()))


@app.command(
    "add",
    epilog=epilog(
        ["tower user add ana", 'echo "$PASSWORD" | tower user add ci --password-stdin'],
        "Exit codes: 0 added or password changed; 2 bad input.",
    ),
)
def add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Add a dashboard user, or set a new password for an existing one."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not name.strip():
        raise UsageError("a user needs a name")
    _accounts(store).add_user(name.strip(), password)
    console.print(f"user {name} can log in", markup=False)


@app.command(
    "list",
    epilog=epilog(["tower user list", "tower user list --format json"], "Exit codes: 0 always."),
)
def list_users(store: StoreOption = None, format: FormatOption = Format.TEXT) -> None:
    """List dashboard users."""
    names = _accounts(store).users()
    if format is Format.JSON:
        emit_json({"users": names})
        return
    for name in names or []:
        console.print(name, markup=False)
    if not names:
        console.print("no users yet: tower user add NAME", markup=False)


@app.command(
    "remove", epilog=epilog(["tower user remove ana"], "Exit codes: 0 removed; 1 no such user.")
)
def remove(
    name: Annotated[str, typer.Argument(help="Login name.")], store: StoreOption = None
) -> None:
    """Remove a dashboard user and end their sessions."""
    if not _accounts(store).remove_user(name):
        console.print(f"no user {name}", markup=False)
        raise typer.Exit(1)
    console.print(f"removed {name}", markup=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="user")
