"""``tower silence add|list|expire``: hold notifications for alerts that match."""

from __future__ import annotations

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
from controltower.cli.incidents import ActorOption, default_actor
from controltower.cli.monitor import StoreOption, open_store
from controltower.monitor.silences import SilenceView
from controltower.units import parse_duration


def _row(view: SilenceView) -> dict[str, object]:
    return {**view.__dict__}


def add_cmd(
    match: Annotated[
        list[str],
        typer.Option("--match", "-m", help="label=value (repeat); value may end in *."),
    ],
    duration: Annotated[str, typer.Option(help="How long, e.g. 30m, 2h.")] = "1h",
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    actor: ActorOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Silence alerts whose labels match (service, monitor, severity, type and your labels)."""
    from controltower.exceptions import UsageError
    from controltower.monitor.registry import service_of
    from controltower.monitor.silences import add_silence, parse_matchers

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--duration {exc}") from None
    loaded = load(spec, env)
    opened = open_store(loaded, store)
    try:
        view = add_silence(
            opened,
            service_of(opened, loaded),
            parse_matchers(match),
            duration=seconds,
            actor=actor or default_actor(),
            comment=comment,
        )
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json(_row(view))
    else:
        console.print(
            f"added {view.describe()} until {view.ends_at:%Y-%m-%d %H:%M:%S}", markup=False
        )


def list_cmd(
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    all: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    format: FormatOption = Format.TEXT,
) -> None:
    """List silences that have not expired."""
    from controltower.monitor.registry import service_of
    from controltower.monitor.silences import list_silences

    loaded = load(spec, env)
    opened = open_store(loaded, store)
    try:
        views = list_silences(opened, service_of(opened, loaded), include_expired=all)
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json([_row(view) for view in views])
        return
    table = Table()
    for column in ("id", "matchers", "until", "by", "comment", "active"):
        table.add_column(column)
    for view in views:
        table.add_row(
            str(view.id),
            ", ".join(f"{k}={v}" for k, v in view.matchers.items()),
            f"{view.ends_at:%Y-%m-%d %H:%M:%S}",
            view.created_by,
            view.comment,
            "yes" if view.active else "no",
        )
    console.print(table)
    console.print(f"{len(views)} silence{'s' if len(views) != 1 else ''}", markup=False)


def expire_cmd(
    silence: Annotated[int, typer.Argument(help="Silence id.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    actor: ActorOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """End a silence now."""
    from controltower.monitor.silences import expire_silence

    opened = open_store(load(spec, env), store)
    try:
        view = expire_silence(opened, silence, actor=actor or default_actor())
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json(_row(view))
    else:
        console.print(f"expired {view.describe()}", markup=False)


_CODES = "Exit codes: 0 done; 1 no such silence; 2 bad usage."


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="silence",
        no_args_is_help=True,
        help="Silence notifications for matching alerts until an expiry.",
        rich_markup_mode=None,
    )
    group.command(
        "add",
        epilog=epilog(
            [
                'tower silence add -m monitor=api --duration 2h --comment "migrating"',
                "tower silence add -m severity=warning -m service=shop",
            ],
            _CODES,
        ),
    )(add_cmd)
    group.command(
        "list", epilog=epilog(["tower silence list", "tower silence list --all"], _CODES)
    )(list_cmd)
    group.command("expire", epilog=epilog(["tower silence expire 3"], _CODES))(expire_cmd)
    app.add_typer(group)
