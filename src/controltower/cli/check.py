"""``tower check``: readiness checks, scores and go/no-go gates."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from controltower.checks import CheckContext, Finding, run_checks, select
from controltower.checks.history import history, save_run
from controltower.checks.runner import CheckRun
from controltower.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EnvOption,
    SpecOption,
    console,
    emit_json,
    epilog,
    err_console,
)
from controltower.exceptions import StoreError, UsageError
from controltower.report import ReportFormat, render, render_text
from controltower.report.checklist import check_table
from controltower.spec import Spec, find_spec_file, load_spec
from controltower.store import Store

EXIT_CODES = (
    "Exit codes: 0 the requested gates pass; 1 a requested gate fails; 2 bad usage or an invalid "
    "tower.toml. Gates are cumulative: --gate 2 needs gates 1 and 2. Without --gate, the highest "
    "gate in [deploy] gates is requested; when that list is empty the command only reports (exit 0)."
)


def service_root(path: Path, spec: Spec) -> Path:
    return (path.resolve().parent / spec.service.root).resolve()


def build_context(
    path: Path, spec: Spec, url: str | None, client: httpx.AsyncClient | None
) -> CheckContext:
    return CheckContext(
        spec=spec,
        root=service_root(path, spec),
        url=url,
        client=client,
        environment=spec.environment,
        environ=dict(os.environ),
    )


async def execute(
    path: Path,
    spec: Spec,
    url: str | None,
    *,
    only: list[str] | None,
    static: bool,
    gate: int | None,
    progress: bool,
) -> CheckRun:
    checks = select(only, kinds=("static",) if static or not url else ("static", "live"))
    if not checks:
        raise UsageError(
            f"no check matches {', '.join(only or [])}", hint="tower check --list shows every id"
        )
    timeout = httpx.Timeout(max(spec.health.timeout * 5, 10.0))
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, headers={"user-agent": "controltower-check"}
    ) as client:
        ctx = build_context(path, spec, url if not static else None, client)
        if not progress:
            return await run_checks(ctx, checks, requested_gate=gate)
        live = sum(1 for c in checks if c.kind == "live" and ctx.url)
        where = f" against {ctx.url}" if ctx.url else ""
        err_console.print(
            f"running {len(checks)} checks ({live} live){where}", style="dim", highlight=False
        )
        if not err_console.is_terminal:
            done = 0

            def line(finding: Finding) -> None:
                nonlocal done
                done += 1
                err_console.print(
                    f"[{done}/{len(checks)}] {finding.id} {finding.status.value}", highlight=False
                )

            return await run_checks(ctx, checks, progress=line, requested_gate=gate)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("checking", total=len(checks))

            def advance(finding: Finding) -> None:
                bar.update(task, advance=1, description=f"checked {finding.id}")

            return await run_checks(ctx, checks, progress=advance, requested_gate=gate)


def show_history(spec: Spec, format: ReportFormat, limit: int) -> None:
    with Store.for_spec(spec) as store:
        entries = history(store, spec.service.name, spec.environment, limit)
    if format is ReportFormat.JSON:
        emit_json([e.to_dict() for e in entries])
        return
    if not entries:
        console.print(f"no check runs stored for {spec.service.name} yet; run `tower check`")
        return
    table = Table(title=f"readiness of {spec.service.name}", box=None)
    for column in ("when", "env", "overall", "trend", "gate 1", "gate 2", "gate 3", "fail", "warn"):
        table.add_column(column)
    previous: float | None = None
    for entry in entries:
        overall = entry.overall
        trend = (
            ""
            if previous is None or overall is None
            else ("▲" if overall > previous else "▼" if overall < previous else "=")
        )
        previous = overall if overall is not None else previous
        gates = [
            ("GO" if entry.gates.get(str(g), {}).get("passed") else "[red]NO-GO[/red]")
            for g in (1, 2, 3)
        ]
        table.add_row(
            entry.started_at.strftime("%Y-%m-%d %H:%M"),
            entry.environment or "-",
            "n/a" if overall is None else f"{overall:.0f}%",
            trend,
            *gates,
            str(entry.counts.get("fail", 0) + entry.counts.get("error", 0)),
            str(entry.counts.get("warn", 0)),
        )
    console.print(table)


def check(
    spec: SpecOption = None,
    env: EnvOption = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", "-u", help="Base URL for live checks (default: the environment's url)."
        ),
    ] = None,
    gate: Annotated[
        int | None,
        typer.Option("--gate", "-g", min=1, max=3, help="Fail (exit 1) unless gates 1..N pass."),
    ] = None,
    format: Annotated[
        ReportFormat,
        typer.Option("--format", "-f", help="text, json, junit, sarif, markdown or html."),
    ] = ReportFormat.TEXT,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only these check ids or prefixes (fly., env.)."),
    ] = None,
    static: Annotated[
        bool, typer.Option("--static", help="Static checks only, even with a URL.")
    ] = False,
    history_: Annotated[
        bool, typer.Option("--history", help="Show stored runs and the trend, then exit.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="Runs shown by --history.")] = 20,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not record this run in the store.")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="List every check id and exit.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show skipped checks too.")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show progress on stderr (default: when stderr is a terminal).",
        ),
    ] = None,
) -> None:
    """Run the readiness checks: static ones on the repository, live ones on --url; score and gate them."""
    if list_:
        _list(format)
        return
    path = spec if spec is not None else find_spec_file()
    loaded = load_spec(path, env=env)
    if history_:
        show_history(loaded, format, limit)
        return
    chosen_url = url or loaded.url
    requested = (
        gate if gate is not None else (max(loaded.deploy.gates) if loaded.deploy.gates else None)
    )
    show = err_console.is_terminal if progress is None else progress
    run = asyncio.run(
        execute(path, loaded, chosen_url, only=only, static=static, gate=requested, progress=show)
    )
    if not no_store:
        try:
            with Store.for_spec(loaded) as store:
                save_run(store, run)
        except StoreError as exc:
            err_console.print(f"warning: the run was not stored: {exc}")
    if format is ReportFormat.TEXT:
        if output is not None:
            with output.open("w", encoding="utf-8") as handle:
                from rich.console import Console

                render_text(
                    run,
                    Console(file=handle, width=120, no_color=True, emoji=False),
                    verbose=verbose,
                )
        else:
            render_text(run, console, verbose=verbose)
    else:
        text = render(run, format)
        if output is not None:
            output.write_text(text, encoding="utf-8")
            err_console.print(f"wrote {format.value} report to {output}")
        else:
            sys.stdout.write(text)
    if requested is not None and not run.passed:
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_OK)


def _list(format: ReportFormat) -> None:
    from controltower.checks import registered

    checks = registered()
    if format is ReportFormat.JSON:
        emit_json(
            [
                {
                    "id": c.id,
                    "title": c.title,
                    "category": c.category.value,
                    "gate": int(c.gate),
                    "severity": c.severity.value,
                    "kind": c.kind,
                    "targets": sorted(t.value for t in c.targets),
                    "advice_on": sorted(t.value for t in c.advice_on),
                    "advice_reason": c.advice_reason,
                    "production_only": c.production_only,
                    "hadolint": c.hadolint,
                    "looks_for": " ".join((c.__doc__ or "").split()),
                    "remedy": c.remedy,
                }
                for c in checks.values()
            ]
        )
        return
    if format is ReportFormat.MARKDOWN:
        sys.stdout.write(check_table())
        return
    table = Table(box=None)
    for column in ("id", "gate", "category", "kind", "title"):
        table.add_column(column)
    for c in checks.values():
        table.add_row(c.id, str(int(c.gate)), c.category.value, c.kind, c.title)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command(
        "check",
        epilog=epilog(
            [
                "tower check",
                "tower check --env production --gate 2",
                "tower check --url http://127.0.0.1:8000 --format html -o readiness.html",
                "tower check --static --format sarif -o tower.sarif",
                "tower check --only fly. --only docker.",
                "tower check --history",
                "tower check --list --format markdown",
            ],
            EXIT_CODES,
        ),
    )(check)
