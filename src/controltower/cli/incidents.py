"""``tower incidents list|show|ack|resolve``: see and act on incidents."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table

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
from controltower.cli.monitor import StoreOption, open_store
from controltower.monitor.incidents import IncidentView


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


ActorOption = Annotated[
    str | None, typer.Option(help="Who acts (default: your user name).", show_default=False)
]


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"  # type: ignore[attr-defined]


def _show(view: IncidentView) -> None:
    console.print(
        f"#{view.id} [{view.severity}] {view.title}: {view.status}"
        + (f" (acknowledged by {view.acknowledged_by})" if view.acknowledged_by else ""),
        markup=False,
    )
    for entry in view.timeline:
        console.print(f"  {_when(entry.at)}  {entry.kind:<13} {entry.message}", markup=False)


def list_cmd(
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    status: Annotated[
        str, typer.Option(help="open, pending, firing, acknowledged, resolved or all.")
    ] = "open",
    limit: Annotated[int, typer.Option(min=1)] = 50,
    format: FormatOption = Format.TEXT,
) -> None:
    """List incidents, newest first (open ones by default)."""
    from controltower.monitor.incidents import list_incidents
    from controltower.monitor.registry import service_of

    loaded = load(spec, env)
    opened = open_store(loaded, store)
    try:
        views = list_incidents(
            opened,
            service_of(opened, loaded),
            status=None if status == "all" else status,
            limit=limit,
        )
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json([view.to_dict() for view in views])
        return
    table = Table()
    for column in ("id", "status", "severity", "title", "started", "ack by"):
        table.add_column(column)
    for view in views:
        table.add_row(
            str(view.id),
            view.status,
            view.severity,
            view.title,
            _when(view.started_at),
            view.acknowledged_by or "-",
        )
    console.print(table)
    console.print(f"{len(views)} incident{'s' if len(views) != 1 else ''} ({status})", markup=False)


def show_cmd(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Show one incident with its timeline."""
    from controltower.monitor.incidents import get_incident

    opened = open_store(load(spec, env), store)
    try:
        view = get_incident(opened, incident)
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json(view.to_dict())
    else:
        _show(view)


def ack_cmd(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    actor: ActorOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Acknowledge an incident: reminders and escalation stop."""
    from controltower.monitor.incidents import acknowledge

    opened = open_store(load(spec, env), store)
    try:
        view = acknowledge(opened, incident, actor or default_actor())
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json(view.to_dict())
    else:
        _show(view)


def resolve_cmd(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    actor: ActorOption = None,
    reason: Annotated[str, typer.Option(help="Why, for the timeline.")] = "",
    format: FormatOption = Format.TEXT,
) -> None:
    """Resolve an incident by hand; its monitors must fail their threshold again to reopen it."""
    from controltower.monitor.incidents import resolve

    opened = open_store(load(spec, env), store)
    try:
        view = resolve(opened, incident, actor or default_actor(), reason=reason)
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json(view.to_dict())
    else:
        _show(view)


_CODES = "Exit codes: 0 done; 1 no such incident or it is already resolved; 2 bad usage."


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="incidents",
        no_args_is_help=True,
        help="List, acknowledge and resolve incidents.",
        rich_markup_mode=None,
    )
    group.command(
        "list",
        epilog=epilog(
            ["tower incidents list", "tower incidents list --status all --format json"], _CODES
        ),
    )(list_cmd)
    group.command("show", epilog=epilog(["tower incidents show 12"], _CODES))(show_cmd)
    group.command(
        "ack",
        epilog=epilog(["tower incidents ack 12", "tower incidents ack 12 --actor ana"], _CODES),
    )(ack_cmd)
    group.command(
        "resolve",
        epilog=epilog(['tower incidents resolve 12 --reason "fixed by hand"'], _CODES),
    )(resolve_cmd)
    app.add_typer(group)
