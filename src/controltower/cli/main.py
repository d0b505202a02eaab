"""The ``tower`` command: one module per command group, registered here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from controltower import __version__
from controltower.cli.common import VerbGroup, err_console
from controltower.exceptions import TowerError

COMMAND_MODULES = {
    "init": "init",
    "validate": "validate",
    "schema": "schema",
    "demo": "demo",
    "check": "check",
    "env": "env",
    "load": "load",
    "generate": "generate",
    "cost": "cost",
    "deploy": "deploy",
    "rollback": "deploy",
    "releases": "deploy",
    "serve": "serve",
    "monitor": "monitor",
    "incidents": "incidents",
    "silence": "silence",
    "backup": "backup",
    "token": "token",
    "user": "user",
}


class TowerGroup(VerbGroup):
    modules = {name: f"controltower.cli.{module}" for name, module in COMMAND_MODULES.items()}


app = typer.Typer(
    name="tower",
    cls=TowerGroup,
    help=(
        "controltower: make a web app production-ready and keep it there.\n\n"
        "check: readiness checks with go/no-go gates. ship: progressive deploys with "
        "automatic rollback. watch: monitors, alerts, errors and backups. "
        "All driven by one tower.toml."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tower {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """controltower: readiness checks, progressive deploys, monitoring, all from tower.toml."""


def run() -> None:
    """Entry point: turn a TowerError into its message and exit code, never a traceback."""
    try:
        app()
    except TowerError as exc:
        err_console.print(Text.assemble(("error:", "red"), f" {exc}"), soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
