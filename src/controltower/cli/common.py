"""What every command shares: options, output and exit codes."""

from __future__ import annotations

import importlib
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
import typer.main
from rich.console import Console
from typer.core import TyperGroup

from controltower.spec import Spec, load_spec

# emoji=False: rich would turn ":100:" in "tower.toml:100:" into an emoji. Markup is used
# only in tower's own strings, with user text passed through rich.markup.escape.
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)

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


HELP_SECTIONS: dict[str, tuple[str, ...]] = {
    "Start": ("init", "validate", "schema", "demo"),
    "Check": ("check", "env", "load", "generate", "cost"),
    "Ship": ("deploy", "rollback", "releases"),
    "Watch": ("serve", "monitor", "incidents", "silence", "backup"),
    "Administer": ("token", "user"),
}


def help_section(name: str) -> str:
    """The section of ``tower --help`` that lists the command ``name``."""
    for section, names in HELP_SECTIONS.items():
        if name in names:
            return section
    return "Other commands"


class VerbGroup(TyperGroup):
    """The root command: ``--help`` lists commands under the three verbs (check, ship, watch).

    Command modules load on first use: ``modules`` maps each command name to the
    module whose ``register(app)`` defines it, so ``tower deploy`` never imports
    the backup or load code.
    """

    modules: ClassVar[dict[str, str]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*self.commands, *self.modules})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.modules:
            self._load(self.modules[cmd_name])
        return self.commands.get(cmd_name)

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(module_name)
        holder = typer.Typer(rich_markup_mode=None, add_completion=False)
        module.register(holder)
        for name, command in typer.main.get_group(holder).commands.items():
            self.commands.setdefault(name, command)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, Any]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                sections.setdefault(help_section(name), []).append((name, command))
        if not sections:
            return
        width = max(len(name) for listed in sections.values() for name, _ in listed)
        limit = formatter.width - 6 - width
        order = [*HELP_SECTIONS, "Other commands"]
        for section in sorted(sections, key=order.index):
            known = HELP_SECTIONS.get(section, ())
            listed = sorted(
                sections[section],
                key=lambda row: known.index(row[0]) if row[0] in known else len(known),
            )
            with formatter.section(section):
                formatter.write_dl(
                    [(name.ljust(width), cmd.get_short_help_str(limit)) for name, cmd in listed]
                )
