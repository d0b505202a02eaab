"""``tower env``: the env catalog: check, diff, example, lint. Values are never printed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from controltower.cli.common import (
    EXIT_FAILED,
    EnvOption,
    Format,
    FormatOption,
    SpecOption,
    console,
    emit_json,
    epilog,
)
from controltower.envcheck import collect, diff, example, lint
from controltower.envcheck.dotenv import RULES, is_dotenv
from controltower.envcheck.rules import check_all
from controltower.envcheck.sources import env_files
from controltower.exceptions import SpecError, UsageError
from controltower.spec import Spec, find_spec_file, load_spec

env_app = typer.Typer(
    help="The env catalog from [env] in tower.toml: check, diff, example, lint.",
    no_args_is_help=True,
)


def _load(spec: Path | None, env: str | None) -> tuple[Spec, Path]:
    path = spec if spec is not None else find_spec_file()
    loaded = load_spec(path, env=env)
    return loaded, (path.resolve().parent / loaded.service.root).resolve()


@env_app.command(
    "check",
    epilog=epilog(
        [
            "tower env check",
            "tower env check --env production",
            "tower env check --env production --format json",
        ],
        "Exit codes: 0 every rule holds; 1 a variable is missing, malformed, a placeholder, client-exposed or of the wrong key shape; 2 bad usage or spec.",
    ),
)
def env_check(
    spec: SpecOption = None, env: EnvOption = None, format: FormatOption = Format.TEXT
) -> None:
    """Check the variables of an environment against the catalog (process env, .env files, fly secrets)."""
    loaded, root = _load(spec, env)
    values = collect(loaded, root, env, dict(os.environ))
    results = check_all(loaded, values, env, loaded.is_production)
    total = sum(len(p) for p in results.values())
    if format is Format.JSON:
        emit_json(
            {
                "environment": env,
                "ok": total == 0,
                "sources": sorted({v.source for v in values.values()}),
                "problems": [
                    {"rule": p.rule, "name": p.name, "message": p.message, "where": p.where}
                    for ps in results.values()
                    for p in ps
                ],
            }
        )
    else:
        for rule, problems in results.items():
            mark = "[green]✓[/green]" if not problems else "[red]✗[/red]"
            console.print(
                f"{mark} {rule}: {'ok' if not problems else f'{len(problems)} problem(s)'}"
            )
            for problem in problems:
                console.print(f"    {problem}", markup=False, soft_wrap=True)
        where = f" for {env}" if env else ""
        console.print(
            f"{len(loaded.env.vars)} variables in the catalog, {len(values)} found{where}; {total} problem{'s' if total != 1 else ''}"
        )
    if total:
        raise typer.Exit(EXIT_FAILED)


@env_app.command(
    "diff",
    epilog=epilog(
        ["tower env diff staging production", "tower env diff staging production --format json"],
        "Exit codes: 0 the two environments match; 1 a variable is missing on one side or differs in format; 2 bad usage or spec.",
    ),
)
def env_diff(
    a: Annotated[str, typer.Argument(help="First environment, e.g. staging.")],
    b: Annotated[str, typer.Argument(help="Second environment, e.g. production.")],
    spec: SpecOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Parity of two environments: names present in one only, and values of different shape. Never values."""
    loaded, root = _load(spec, None)
    left = collect(loaded, root, a, None, include_process=False)
    right = collect(loaded, root, b, None, include_process=False)
    differences = diff(left, right)
    if format is Format.JSON:
        emit_json(
            {
                "a": a,
                "b": b,
                "same": not differences,
                "differences": [d.to_dict() for d in differences],
            }
        )
    else:
        table = Table(box=None)
        for column in ("variable", "difference", a, b):
            table.add_column(column)
        words = {
            "only_in_a": f"only in {a}",
            "only_in_b": f"only in {b}",
            "format": "different format",
        }
        for d in differences:
            table.add_row(d.name, words[d.kind], d.a, d.b)
        if differences:
            console.print(table)
        console.print(
            f"{a}: {len(left)} variables ({', '.join(env_files(loaded, a))}); {b}: {len(right)}; {len(differences)} difference{'s' if len(differences) != 1 else ''}"
        )
    if differences:
        raise typer.Exit(EXIT_FAILED)


@env_app.command(
    "example",
    epilog=epilog(
        [
            "tower env example",
            "tower env example --output config/.env.example",
            "tower env example --stdout",
        ],
        "Exit codes: 0 written; 2 bad usage or spec.",
    ),
)
def env_example(
    spec: SpecOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write (default: .env.example next to tower.toml)."
        ),
    ] = None,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print instead of writing.")] = False,
) -> None:
    """Write .env.example from the catalog: every variable, its purpose, no secret value."""
    loaded, root = _load(spec, None)
    text = example(loaded)
    if stdout:
        typer.echo(text, nl=False)
        return
    target = output or root / ".env.example"
    target.write_text(text, encoding="utf-8")
    console.print(f"wrote {target} ({len(loaded.env.vars)} variables)")


@env_app.command(
    "lint",
    epilog=epilog(
        [
            "tower env lint",
            "tower env lint .env .env.production",
            "tower env lint --skip UnorderedKey --format json",
        ],
        "Exit codes: 0 no problems (warnings allowed); 1 problems found; 2 bad usage. "
        "Rules (dotenv-linter's): " + ", ".join(RULES) + ". A `# dotenv-linter:off Rule` comment "
        "turns a rule off from that line on.",
    ),
)
def env_lint(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Files to lint (default: the .env files next to tower.toml)."),
    ] = None,
    spec: SpecOption = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="A rule to skip (repeatable).")
    ] = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Lint .env files with dotenv-linter's rules, and values against the [env.vars] catalog."""
    unknown = sorted(set(skip or []) - set(RULES))
    if unknown:
        raise UsageError(
            f"unknown rule {', '.join(unknown)}", hint=f"rules are: {', '.join(RULES)}"
        )
    catalog = None
    try:
        loaded, root = _load(spec, None)
        catalog = loaded.env.vars
    except SpecError:
        if not files:
            raise
        root = Path.cwd()
    chosen = (
        list(files)
        if files
        else sorted(p for p in root.iterdir() if p.is_file() and is_dotenv(p.name))
    )
    missing = [str(f) for f in chosen if not f.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    problems = [
        p
        for f in chosen
        for p in lint(
            f.read_text(encoding="utf-8", errors="replace"),
            str(f),
            catalog=catalog if f.name != ".env.example" else None,
            skip=frozenset(skip or []),
        )
    ]
    errors = [p for p in problems if not p.warning]
    if format is Format.JSON:
        emit_json(
            {
                "files": [str(f) for f in chosen],
                "ok": not errors,
                "problems": [p.to_dict() for p in problems],
            }
        )
    else:
        for problem in problems:
            style = "yellow" if problem.warning else "red"
            console.print(f"[{style}]{escape(str(problem))}[/{style}]", soft_wrap=True)
        console.print(
            f"{len(chosen)} file{'s' if len(chosen) != 1 else ''}: {len(errors)} problem{'s' if len(errors) != 1 else ''}, {len(problems) - len(errors)} warning{'s' if len(problems) - len(errors) != 1 else ''}"
        )
    if errors:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(env_app, name="env")
