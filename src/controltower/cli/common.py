"""What every command shares: options, output and exit codes."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from controltower.spec import Spec, load_spec

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

EXIT_CODES = """Exit codes: 0 success; 1 the command ran and found a failure; 2 bad usage or an invalid tower.toml."""


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"


SpecOption = Annotated[
    Path | None,
    typer.Option(
        "--spec",
        "-s",
        help="Path to tower.toml (default: found upwards from here).",
        show_default=False,
    ),
]
EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        help="Environment overlay to apply, e.g. production.",
        envvar="TOWER_ENV",
        show_default=False,
    ),
]
FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", help="Output format: text for people, json for machines."),
]


def load(spec: Path | None, env: str | None) -> Spec:
    return load_spec(spec, env=env)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")


def epilog(examples: list[str], exit_codes: str = EXIT_CODES) -> str:
    """Help text after the options: examples kept as written, then the exit codes."""
    shown = "\n".join(f"  $ {example}" for example in examples)
    return f"Examples:\n\n\b\n{shown}\n\n{exit_codes}"
