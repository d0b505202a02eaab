"""``tower load``: load the service, judge the budgets, compare with earlier runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.text import Text

from controltower.cli.common import (
    EXIT_FAILED,
    EnvOption,
    Format,
    FormatOption,
    SpecOption,
    console,
    emit_json,
    epilog,
    err_console,
    load,
)
from controltower.exceptions import LoadTestError, UsageError
from controltower.load.api import LoadOutcome, compare_with, run_plan
from controltower.load.history import find_reference, save_run
from controltower.load.html import render_html
from controltower.load.plan import Plan, plan_from_budgets
from controltower.load.report import progress_line, summary_renderable
from controltower.load.runner import Progress
from controltower.spec import Spec
from controltower.store import Store
from controltower.units import parse_duration

EXIT_INTERRUPTED = 130
EXIT_CODES = (
    "Exit codes: 0 every budget met (and no regression with --compare); "
    "1 a budget failed, the run failed or latency regressed; "
    "2 bad usage or an invalid tower.toml; 130 interrupted (a partial report is printed)."
)


class Reference(StrEnum):
    BASELINE = "baseline"
    PREVIOUS = "previous"


def _seconds(value: str | None, name: str, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{name} {exc}") from None
    if positive and seconds <= 0:
        raise UsageError(f"{name} must be longer than 0s (got {value!r})")
    return seconds


def _store(spec: Spec) -> Store:
    url = spec.store.url.get_secret_value() if spec.store.url else None
    return Store.open(url, root=Path(spec.source).resolve().parent)


def load_command(
    url: Annotated[
        str | None,
        typer.Option(
            "--url", "-u", help="Base URL to load (default: the --env environment's url)."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", "-r", min=0.01, help="Open model: arrivals per second, sent on schedule."
        ),
    ] = None,
    users: Annotated[
        int | None,
        typer.Option("--users", min=1, help="Closed model: users that each wait for an answer."),
    ] = None,
    think_time: Annotated[
        str | None, typer.Option("--think-time", help="Closed model: pause between requests.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", "-d", help="How long to load, e.g. 30s.")
    ] = None,
    ramp_up: Annotated[
        str | None, typer.Option("--ramp-up", help="Rise linearly to the full load over this.")
    ] = None,
    connections: Annotated[
        int | None,
        typer.Option("--connections", "-c", min=1, help="Open model: keep-alive connections."),
    ] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Per-request timeout.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-w", min=1, help="Worker processes (default: one per core as needed)."
        ),
    ] = None,
    abort_on_fail: Annotated[
        bool | None,
        typer.Option(
            "--abort-on-fail/--no-abort-on-fail", help="Stop as soon as a budget is lost."
        ),
    ] = None,
    compare: Annotated[
        Reference | None,
        typer.Option("--compare", help="Compare latency with the baseline or the previous run."),
    ] = None,
    save_baseline: Annotated[
        bool, typer.Option("--save-baseline", help="Make this run the baseline.")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not keep this run in the store.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify TLS certificates.")
    ] = False,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Load the service at a constant rate or with users, and judge the [budgets]."""
    loaded = load(spec, env)
    target = url or loaded.url
    if not target:
        raise UsageError(
            "no URL to load",
            hint="pass --url http://... or --env with an environment that has a url",
        )
    if rate is not None and users is not None:
        raise UsageError("--rate (open model) and --users (closed model) exclude each other")
    if save_baseline and no_store:
        raise UsageError("--save-baseline keeps the run in the store; drop --no-store")
    try:
        plan = plan_from_budgets(
            loaded.budgets,
            target,
            rate=rate,
            users=users,
            think_time=_seconds(think_time, "--think-time"),
            duration=_seconds(duration, "--duration", positive=True),
            ramp_up=_seconds(ramp_up, "--ramp-up"),
            connections=connections,
            timeout=_seconds(timeout, "--timeout", positive=True),
            workers=workers,
            abort_on_fail=abort_on_fail,
            insecure=insecure or None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    text = format is Format.TEXT
    if text:
        console.print(f"load: {plan.describe()}", markup=False, soft_wrap=True)
    outcome = _run(plan, live=err_console.is_terminal)
    service = loaded.service.name
    environment = loaded.environment or "default"
    if not no_store or compare is not None:
        store = _store(loaded)
        try:
            if compare is not None:
                reference = find_reference(
                    store, service=service, environment=environment, which=compare.value
                )
                if reference is None:
                    outcome.notes.append(f"no {compare.value} run stored yet to compare with")
                else:
                    compare_with(
                        outcome, reference.sample, against=f"{compare.value} (run {reference.id})"
                    )
                    earlier = reference.summary.get("description")
                    if earlier and earlier != plan.describe():
                        outcome.notes.append(
                            f"the {compare.value} (run {reference.id}) ran a different load: "
                            f"{earlier}"
                        )
            if not no_store:
                outcome.run_id = save_run(
                    store,
                    service=service,
                    environment=environment,
                    url=target,
                    model=plan.model,
                    passed=outcome.passed,
                    interrupted=outcome.result.interrupted,
                    aborted=outcome.result.aborted,
                    summary=_stored_summary(outcome),
                    sample=outcome.result.sample,
                    baseline=save_baseline and not outcome.result.interrupted,
                )
                if save_baseline and not outcome.result.interrupted:
                    outcome.notes.append(f"saved run {outcome.run_id} as the baseline")
        finally:
            store.close()
    report = outcome.to_dict()
    if html is not None:
        try:
            html.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise LoadTestError(f"cannot write the HTML report to {html}: {exc}") from None
        report["html"] = str(html)
    if format is Format.JSON:
        emit_json(report)
    else:
        console.print(summary_renderable(report))
        if html is not None:
            console.print(f"HTML report: {html}", markup=False)
    if outcome.result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not outcome.passed or outcome.regressed:
        raise typer.Exit(EXIT_FAILED)


def _stored_summary(outcome: LoadOutcome) -> dict[str, object]:
    data = outcome.to_dict()
    return {
        key: data[key]
        for key in ("summary", "scenarios", "budgets", "generator", "elapsed", "description")
    }


def _run(plan: Plan, *, live: bool) -> LoadOutcome:
    if not live:
        return run_plan(plan, on_progress=_plain_progress if plan.duration >= 1 else None)
    starting = Text(f"starting {plan.workers} worker process(es) ...", style="dim")
    with Live(starting, console=err_console, refresh_per_second=4, transient=True) as display:

        def show(progress: Progress) -> None:
            display.update(progress_line(progress))

        return run_plan(plan, on_progress=show)


def _plain_progress(progress: Progress) -> None:
    """Without a terminal for a live line: after the first second, then every five, on stderr."""
    if int(progress.elapsed) in (1, progress.duration) or int(progress.elapsed) % 5 == 0:
        err_console.print(progress_line(progress), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(
        "load",
        epilog=epilog(
            [
                "tower load --env production",
                "tower load --url http://127.0.0.1:8000 --rate 500 --duration 30s",
                "tower load --users 50 --think-time 1s --duration 1m",
                "tower load --env staging --compare baseline --html load.html",
                "tower load --env staging --save-baseline --format json",
            ],
            EXIT_CODES,
        ),
    )(load_command)
