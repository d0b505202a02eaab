"""``tower validate``: load tower.toml and say whether it is valid."""

from __future__ import annotations

from pathlib import Path

import typer

from controltower.cli.common import (
    EXIT_USAGE,
    EnvOption,
    Format,
    FormatOption,
    SpecOption,
    console,
    emit_json,
    epilog,
)
from controltower.exceptions import SpecError
from controltower.spec import Spec, find_spec_file, load_spec
from controltower.spec.loader import validate_spec


def summary(spec: Spec) -> str:
    parts = [
        f"service {spec.service.name} ({spec.service.stack.value} on {spec.service.target.value})",
        f"{len(spec.environments)} environment{'s' if len(spec.environments) != 1 else ''}",
        f"{len(spec.env.vars)} env vars",
        f"{len(spec.monitors)} monitor{'s' if len(spec.monitors) != 1 else ''}",
        f"deploy {spec.deploy.strategy.value} via {spec.deploy.driver.value}",
    ]
    where = f" [{spec.environment}]" if spec.environment else ""
    return f"{spec.source}{where}: valid: " + ", ".join(parts)


def validate(
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Check tower.toml (and every environment overlay) and print every error at once."""
    path: Path = spec if spec is not None else find_spec_file()
    if env is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _unreadable(path, exc) from None
        issues = validate_spec(text, source=str(path))
    else:
        try:
            load_spec(path, env=env)
            issues = []
        except SpecError as exc:
            issues = exc.issues
    if issues:
        if format is Format.JSON:
            emit_json({"valid": False, "errors": [issue.__dict__ for issue in issues]})
        else:
            for issue in issues:
                console.print(str(issue), markup=False, soft_wrap=True)
            console.print(f"{len(issues)} error{'s' if len(issues) != 1 else ''}", style="red")
        raise typer.Exit(EXIT_USAGE)
    loaded = load_spec(path, env=env)
    if format is Format.JSON:
        emit_json(
            {
                "valid": True,
                "file": str(path),
                "environment": env,
                "service": loaded.service.name,
                "summary": summary(loaded),
            }
        )
    else:
        console.print(summary(loaded), markup=False, soft_wrap=True)


def _unreadable(path: Path, exc: Exception) -> SpecError:
    from controltower.exceptions import SpecIssue

    if isinstance(exc, FileNotFoundError):
        return SpecError([SpecIssue(str(path), 0, "", "file not found; run `tower init`")])
    return SpecError([SpecIssue(str(path), 0, "", f"cannot be read: {exc}")])


def register(app: typer.Typer) -> None:
    app.command(
        "validate",
        epilog=epilog(
            [
                "tower validate",
                "tower validate --env production",
                "tower validate --spec deploy/tower.toml --format json",
            ],
            "Exit codes: 0 the spec is valid; 2 it is not (every error is printed).",
        ),
    )(validate)
