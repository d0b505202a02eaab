"""The ``tower`` command: one module per command group, registered here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from controltower import __version__
from controltower.cli import backup as backup_cmd
from controltower.cli import check as check_cmd
from controltower.cli import cost as cost_cmd
from controltower.cli import demo as demo_cmd
from controltower.cli import deploy as deploy_cmd
from controltower.cli import env as env_cmd
from controltower.cli import generate as generate_cmd
from controltower.cli import incidents as incidents_cmd
from controltower.cli import init as init_cmd
from controltower.cli import load as load_cmd
from controltower.cli import monitor as monitor_cmd
from controltower.cli import serve as serve_cmd
from controltower.cli import silence as silence_cmd
from controltower.cli import token as token_cmd
from controltower.cli import user as user_cmd
from controltower.cli import validate as validate_cmd
from controltower.cli.common import VerbGroup, err_console
from controltower.exceptions import TowerError

app = typer.Typer(
    name="tower",
    cls=VerbGroup,
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


demo_cmd.register(app)
init_cmd.register(app)
check_cmd.register(app)
env_cmd.register(app)
load_cmd.register(app)
deploy_cmd.register(app)
validate_cmd.register(app)
monitor_cmd.register(app)
incidents_cmd.register(app)
silence_cmd.register(app)
serve_cmd.register(app)
token_cmd.register(app)
backup_cmd.register(app)
generate_cmd.register(app)
cost_cmd.register(app)
user_cmd.register(app)


def run() -> None:
    """Entry point: turn a TowerError into its message and exit code, never a traceback."""
    try:
        app()
    except TowerError as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
