"""``tower init``: look at this folder and write a commented tower.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controltower.cli.common import Format, FormatOption, console, emit_json, epilog
from controltower.exceptions import UsageError
from controltower.files import write_file
from controltower.spec import DEFAULT_SPEC_FILE, parse_spec
from controltower.spec.detect import detect
from controltower.spec.presets import PRESETS, render
from controltower.spec.tailor import raised


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
    notes = raised(found)
    written = parse_spec(text, source=str(target), environ={})
    write_file(target, text)
    if format is Format.JSON:
        emit_json(
            {
                "file": str(target),
                "preset": chosen,
                **found.to_dict(),
                "target": written.service.target.value,
                "driver": written.deploy.driver.value,
                "raised": notes,
            }
        )
        return
    for line in found.evidence or ["nothing recognised; using the preset's defaults"]:
        console.print(f"  found: {line}", soft_wrap=True)
    console.print(
        f"  target {written.service.target.value}, deploy driver {written.deploy.driver.value}"
        + (f", entry point {found.entrypoint}" if found.entrypoint else ""),
        soft_wrap=True,
    )
    if found.env_vars:
        console.print("  environment variables the repository uses:", soft_wrap=True)
        for use in found.env_vars.values():
            flags = ["secret" if use.secret else "", "required" if use.required else "optional"]
            console.print(
                f"    {use.name}  ({', '.join(f for f in flags if f)}; {', '.join(use.sources)})",
                soft_wrap=True,
            )
    else:
        console.print("  environment variables the repository uses: none found", soft_wrap=True)
    if found.provided_vars:
        console.print(
            "  set by the platform, left out of [env]: " + ", ".join(found.provided_vars),
            soft_wrap=True,
        )
    for note in notes:
        console.print(f"  raised: {note}", soft_wrap=True)
    console.print(f"wrote {target} from preset {chosen}", soft_wrap=True)
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
