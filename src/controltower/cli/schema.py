"""``tower schema``: print the JSON Schema of tower.toml, for editors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controltower.cli.common import Format, FormatOption, console, emit_json, epilog
from controltower.exceptions import TowerError
from controltower.files import write_file
from controltower.spec.schema import render, spec_schema


def schema(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the schema to this file instead of standard output."
        ),
    ] = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Print the JSON Schema (draft 2020-12) of tower.toml, generated from tower's own models.

    Point your editor at it (Taplo / Even Better TOML: a `#:schema ./tower.schema.json`
    line at the top of tower.toml) to get completion and inline errors.
    `tower validate` remains the authority: it also checks rules that span tables.
    The schema is JSON in either format; with --output and --format json the
    confirmation is JSON too.
    """
    text = render(spec_schema())
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        write_file(output, text)
    except OSError as exc:
        raise TowerError(f"cannot write {output}: {exc.strerror or exc}") from None
    if format is Format.JSON:
        emit_json({"written": str(output)})
    else:
        console.print(f"wrote {output}", markup=False)


def register(app: typer.Typer) -> None:
    app.command(
        "schema",
        epilog=epilog(
            [
                "tower schema > tower.schema.json",
                "tower schema --output .tower/tower.schema.json",
            ],
            "Exit codes: 0 the schema was written; 1 the file could not be written.",
        ),
    )(schema)
