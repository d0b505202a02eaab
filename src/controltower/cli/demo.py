"""``tower demo``: check, ship and watch the bundled example app, with no outside service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from controltower.cli.common import Format, FormatOption, console, emit_json, epilog, err_console

EXIT_CODES = (
    "Exit codes: 0 every step behaved as expected; 1 a step did not (the summary says which); "
    "2 bad usage."
)


def demo(
    workspace: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="Workspace for the demo's tower.toml, store and app state (emptied first).",
        ),
    ] = Path(".tower/demo"),
    exit_: Annotated[
        bool,
        typer.Option(
            "--exit", help="Stop everything after the steps instead of keeping the dashboard up."
        ),
    ] = False,
    password: Annotated[
        str | None,
        typer.Option(
            help="Dashboard password for the user 'demo' (default: a random one, printed)."
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=5.0, max=500.0, help="Background traffic, requests per second.")
    ] = 40.0,
    format: FormatOption = Format.TEXT,
) -> None:
    """Run the example app through check, ship and watch on this machine.

    Starts tower serve (API, dashboard, status page, monitors, error ingestion),
    deploys the example app with the local driver behind tower's proxy, runs
    tower check on it, ships a good release as a canary and a bad one that is
    rolled back automatically, sends errors through the Sentry SDK, waits for an
    incident, and leaves the dashboard running until Ctrl-C.
    """
    from controltower.dashboard.auth import validate_password
    from controltower.demo import Demo

    if password is not None:
        validate_password(password)
    shown = err_console if format is Format.JSON else console
    runner = Demo(workspace, console=shown, password=password, rate=rate)
    shown.print(
        "[bold]tower demo[/bold]: the example app, checked, shipped and watched on this machine",
        highlight=False,
    )
    shown.print(f"workspace {runner.workspace}", highlight=False, style="dim")
    try:
        summary = runner.run()
        if format is Format.JSON:
            emit_json(summary.to_dict())
        else:
            _show(console, summary)
        if not exit_ and summary.ok:
            shown.print(
                "\nthe dashboard stays up; press Ctrl-C to stop everything", highlight=False
            )
            runner.wait()
    finally:
        with shown.status("stopping the app, its proxy and tower serve"):
            runner.close()
    if not summary.ok:
        raise typer.Exit(1)


def _show(out: Console, summary: object) -> None:
    from controltower.demo import DemoSummary

    assert isinstance(summary, DemoSummary)
    traffic = summary.traffic
    if traffic:
        out.print(
            f"\nbackground traffic: {traffic['requests']:,} requests at {traffic['rate']:.0f}/s, "
            f"{traffic['failed']:,} failed (the bad canary's share, until it was rolled back)",
            highlight=False,
        )
    verdict = (
        "[green]every step behaved as expected[/green]"
        if summary.ok
        else "[red]some steps failed[/red]"
    )
    out.print(f"\n{verdict}\n", highlight=False)
    rows = [
        ("dashboard", summary.dashboard),
        ("login", f"{summary.user} / {summary.password}"),
        ("status page", summary.status_page),
        ("the app", summary.app),
        ("DSN", summary.dsn),
        ("workspace", summary.workspace),
    ]
    for label, value in rows:
        out.print(f"  {label:<12} {value}", highlight=False, soft_wrap=True)
    out.print(
        f"\n  try: tower releases --spec {summary.workspace}/tower.toml --dora",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command(
        "demo",
        epilog=epilog(
            [
                "tower demo",
                "tower demo --exit --format json",
                "tower demo --dir /tmp/tower-demo --password s3cret --rate 80",
            ],
            EXIT_CODES,
        ),
    )(demo)
