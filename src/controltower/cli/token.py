"""``tower token``: API tokens (create, list, revoke) and project DSNs."""

from __future__ import annotations

from typing import Annotated

import typer

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
from controltower.ingest.projects import dsn_for, ensure_projects
from controltower.server import tokens
from controltower.server.factory import open_store

token_app = typer.Typer(
    help="API tokens for the JSON API, and the DSNs of error-tracking projects.",
    no_args_is_help=True,
)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Store URL (default: [store] url or .tower/tower.db)."),
]


@token_app.command(
    "create",
    epilog=epilog(
        [
            "tower token create --name ci --scope read --scope write",
            "tower token create --name app --scope ingest --format json",
        ],
        "Exit codes: 0 created (the token is printed once); 2 bad name or scope.",
    ),
)
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the token is for.")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="read, write or ingest; repeat for several.")
    ],
    spec: SpecOption = None,
    env: EnvOption = None,
    database_url: DatabaseOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Create an API token. Its value is printed once and only its hash is stored."""
    store = open_store(load(spec, env), database_url)
    with store:
        value, info = tokens.create_token(store, name, scope)
    if format is Format.JSON:
        emit_json({**info.to_json(), "token": value})
        return
    console.print(value, markup=False)
    console.print(
        f"token {info.name} (id {info.id}, scopes {', '.join(info.scopes)}): "
        "store it now; it is not shown again",
        markup=False,
        style="dim",
    )


@token_app.command(
    "list",
    epilog=epilog(["tower token list", "tower token list --format json"], "Exit codes: 0 listed."),
)
def list_(
    spec: SpecOption = None,
    env: EnvOption = None,
    database_url: DatabaseOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """List API tokens (names, prefixes and scopes; never values)."""
    store = open_store(load(spec, env), database_url)
    with store:
        found = tokens.list_tokens(store)
    if format is Format.JSON:
        emit_json({"items": [info.to_json() for info in found]})
        return
    for info in found:
        state = "revoked" if info.revoked else "active"
        console.print(
            f"{info.id:>4}  {info.name:<20} {info.prefix}…  {','.join(info.scopes):<18} {state}",
            markup=False,
        )
    console.print(f"{len(found)} tokens", markup=False)


@token_app.command(
    "revoke",
    epilog=epilog(
        ["tower token revoke 3"], "Exit codes: 0 revoked; 1 no active token with that id."
    ),
)
def revoke(
    token_id: Annotated[int, typer.Argument(help="The id shown by `tower token list`.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    database_url: DatabaseOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Revoke an API token: requests with it are refused from then on."""
    store = open_store(load(spec, env), database_url)
    with store:
        done = tokens.revoke_token(store, token_id)
    if format is Format.JSON:
        emit_json({"id": token_id, "revoked": done})
    else:
        console.print(
            f"token {token_id} revoked" if done else f"no active token {token_id}", markup=False
        )
    if not done:
        raise typer.Exit(EXIT_FAILED)


@token_app.command(
    "dsn",
    epilog=epilog(
        ["tower token dsn", "tower token dsn web --format json"],
        "Exit codes: 0 printed; 1 no such project in [[server.projects]].",
    ),
)
def dsn(
    project: Annotated[str | None, typer.Argument(help="Project name (default: all).")] = None,
    spec: SpecOption = None,
    env: EnvOption = None,
    database_url: DatabaseOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Print the DSN of each error-tracking project, to configure a Sentry SDK with."""
    loaded = load(spec, env)
    store = open_store(loaded, database_url)
    with store:
        projects = ensure_projects(store, loaded.server.projects)
    base = loaded.server.public_url or f"http://{loaded.server.host}:{loaded.server.port}"
    chosen = {p.name: dsn_for(p, base) for p in projects if project in (None, p.name)}
    if format is Format.JSON:
        emit_json({"projects": chosen})
    else:
        for name, value in chosen.items():
            console.print(f"{name}  {value}", markup=False, soft_wrap=True)
    if project is not None and not chosen:
        console.print(f"no project {project!r} in [[server.projects]]", markup=False)
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
