"""``tower generate``: fly.toml, Dockerfile, CI workflow, .env.example and Next.js files."""

from __future__ import annotations

from pathlib import Path
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
from controltower.generate import TARGETS, Outcome, apply, build

_WORDS = {
    "created": "created",
    "changed": "updated",
    "unchanged": "unchanged",
    "would-create": "would create",
    "would-change": "would change",
    "kept": "kept",
}


def generate(
    target: Annotated[str, typer.Argument(help=f"One of {', '.join(TARGETS)}, or all.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    write: Annotated[
        bool, typer.Option("--write", "-w", help="Write the files (default: show what changes).")
    ] = False,
    release_command: Annotated[
        str | None,
        typer.Option(
            "--release-command",
            help="fly.toml release_command that migrates the database (default: detected).",
        ),
    ] = None,
    app_module: Annotated[
        str | None,
        typer.Option(
            "--app-module",
            help="Entry point for Python Dockerfiles, module:variable "
            "(default: [service] entrypoint, else detected).",
        ),
    ] = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Generate production files from tower.toml; show a diff, write with --write."""
    loaded = load(spec, env)
    root = Path(loaded.source).resolve().parent
    files = build(loaded, target, root, release_command=release_command, python_entry=app_module)
    outcomes: list[Outcome] = [
        apply(file, root, write=write, replace_yours=target != "all") for file in files
    ]
    pending = [o for o in outcomes if o.state.startswith("would")]
    if format is Format.JSON:
        emit_json({"write": write, "files": [o.to_dict() for o in outcomes]})
    else:
        for outcome in outcomes:
            console.print(f"{_WORDS[outcome.state]:>13}  {outcome.path}", markup=False)
            for note in outcome.notes:
                console.print(
                    f"{'':>13}  note: {note}", style="yellow", markup=False, soft_wrap=True
                )
            if outcome.diff:
                console.print(outcome.diff, markup=False, highlight=False, soft_wrap=True)
        if pending:
            console.print(
                f"{len(pending)} file{'s' if len(pending) != 1 else ''} differ from what is on "
                "disk; run again with --write to apply",
                markup=False,
            )
    if pending and not write:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command(
        "generate",
        epilog=epilog(
            [
                "tower generate fly-toml",
                "tower generate fly-toml --env production --write",
                "tower generate dockerfile --write",
                "tower generate github-actions",
                "tower generate nextjs --write",
                "tower generate all --format json",
            ],
            "Exit codes: 0 the files on disk match (or were written); 1 some file would "
            "be created or changed (run with --write); 2 bad usage or an invalid tower.toml.",
        ),
    )(generate)
