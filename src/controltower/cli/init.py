"""``tower init``: look at this folder and write a commented tower.toml."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from controltower.cli.common import Format, FormatOption, console, emit_json, epilog
from controltower.exceptions import UsageError
from controltower.spec import DEFAULT_SPEC_FILE, parse_spec
from controltower.spec.detect import detect
from controltower.spec.presets import PRESETS, render


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the app.")] = Path("."),
    preset: Annotated[
        str | None,
        typer.Option("--preset", "-p", help=f"One of {', '.join(PRESETS)} (default: detected)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing tower.toml.")
    ] = False,
    format: FormatOption = Format.TEXT,
) -> None:
    """Detect the stack in a folder and write a commented tower.toml from a preset."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder")
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    target = directory / DEFAULT_SPEC_FILE
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to overwrite it")
    found = detect(directory)
    chosen = preset or found.preset
    text = render(chosen, found)
    parse_spec(text, source=str(target), environ={})
    write_atomic(target, text)
    if format is Format.JSON:
        emit_json(
            {
                "file": str(target),
                "preset": chosen,
                "stack": found.stack,
                "target": found.target,
                "evidence": found.evidence,
            }
        )
        return
    for line in found.evidence or ["nothing recognised; using the preset's defaults"]:
        console.print(f"  found: {line}", markup=False, soft_wrap=True)
    console.print(f"wrote {target} from preset {chosen}", markup=False, soft_wrap=True)
    console.print("next: edit it, then run `tower validate` and `tower check`", markup=False)


def register(app: typer.Typer) -> None:
    app.command(
        "init",
        epilog=epilog(
            [
                "tower init",
                "tower init --preset nextjs-fly",
                "tower init ./web --preset python-asgi --force",
            ],
            "Exit codes: 0 written; 2 bad usage, or tower.toml exists (use --force).",
        ),
    )(init)
