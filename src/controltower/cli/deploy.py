"""``tower deploy``, ``tower rollback`` and ``tower releases``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
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
    load,
)
from controltower.clock import utcnow
from controltower.deploy import Engine, ReleaseView, open_engine
from controltower.deploy.local.client import AgentClient
from controltower.deploy.views import dora_figures
from controltower.exceptions import UsageError
from controltower.spec.deploy import Strategy
from controltower.units import format_duration

EXIT_PAUSED = 3
DEPLOY_EXITS = (
    "Exit codes: 0 the release serves all traffic; 1 it was rolled back or failed "
    "(the reason names the failed condition); 2 bad usage or an invalid tower.toml; "
    "3 paused: the analysis reached no verdict within [deploy.analysis] inconclusive_limit "
    "(decide with `tower deploy promote` or `tower deploy abort`)."
)
STYLE = {
    "succeeded": "green",
    "rolled_back": "yellow",
    "failed": "red",
    "running": "cyan",
    "rolling_back": "yellow",
}

deploy_app = typer.Typer(
    help="Ship a release: gates, health, progressive traffic, analysis, automatic rollback.",
    invoke_without_command=True,
    no_args_is_help=False,
)
releases_app = typer.Typer(
    help="Release history, one release's step log, and DORA figures.",
    invoke_without_command=True,
)


def _engine(spec_path: Path | None, env: str | None, format: Format) -> Engine:
    spec = load(spec_path, env)

    def show(state: str, message: str) -> None:
        if format is Format.TEXT:
            console.print(f"  [dim]{utcnow():%H:%M:%S}[/dim] {state:<16} {message}", soft_wrap=True)

    return open_engine(spec, on_step=show)


def _summary(release: ReleaseView) -> str:
    took = f" in {format_duration(release.duration)}" if release.duration is not None else ""
    status = "paused" if release.status == "running" and release.state == "paused" else ""
    head = f"{release.kind} {release.id} of {release.version}: {status or release.status}{took}"
    return head + (f"\n  reason: {release.reason}" if release.reason else "")


def _artifact(release: ReleaseView) -> str:
    if not release.artifact:
        return "  artifact: none recorded (the version is a label only)"
    size = f", {release.artifact_size} bytes" if release.artifact_size is not None else ""
    return (
        f"  artifact: {release.artifact_kind} {release.artifact}\n"
        f"  digest: {release.artifact_digest or '-'}{size}"
    )


def _finish(release: ReleaseView, format: Format) -> None:
    if format is Format.JSON:
        emit_json(release.to_dict())
    else:
        style = STYLE.get(release.status, "")
        console.print(
            f"[{style}]{_summary(release)}[/{style}]" if style else _summary(release),
            soft_wrap=True,
        )
    if release.status == "running" and release.state == "paused":
        raise typer.Exit(EXIT_PAUSED)
    if release.status != "succeeded":
        raise typer.Exit(EXIT_FAILED)


def _parse_set(values: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {value!r} is not KEY=VALUE")
        env[key] = val
    return env


@deploy_app.callback()
def deploy(
    ctx: typer.Context,
    version: Annotated[str, typer.Option("--version", "-v", help="Version to deploy.")] = "",
    image: Annotated[str, typer.Option("--image", help="Image to deploy (fly).")] = "",
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="KEY=VALUE for the release's environment; secret values are used, never stored or shown.",
        ),
    ] = [],  # noqa: B006
    strategy: Annotated[
        Strategy | None, typer.Option("--strategy", help="Override [deploy] strategy.")
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--commit", help="Git commit (default: HEAD of the spec's tree).")
    ] = None,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Deploy a release with the spec's strategy; roll back by itself if any gate fails."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"spec": spec, "env": env, "format": format}
        return
    engine = _engine(spec, env, format)
    for recovered in engine.recover():
        if format is Format.TEXT:
            console.print(f"recovered an interrupted deploy: {_summary(recovered)}")
    if format is Format.TEXT:
        console.print(
            f"deploying {version or image or engine.spec.service.version} of "
            f"{engine.spec.service.name} ({(strategy or engine.spec.deploy.strategy).value} "
            f"via {engine.driver.name})"
        )
    release = engine.deploy(
        version=version, image=image, env=_parse_set(set_), strategy=strategy, git_commit=commit
    )
    _finish(release, format)


def _options(
    ctx: typer.Context, spec: Path | None, env: str | None, format: Format
) -> tuple[Path | None, str | None, Format]:
    parent = ctx.obj or {}
    return (
        spec or parent.get("spec"),
        env or parent.get("env"),
        (format if format is not Format.TEXT else parent.get("format", Format.TEXT)),
    )


@deploy_app.command("promote", epilog=epilog(["tower deploy promote"], DEPLOY_EXITS))
def promote(
    ctx: typer.Context,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Move a paused canary to its next step (or finish a deploy nobody is running)."""
    spec, env, format = _options(ctx, spec, env, format)
    release = _engine(spec, env, format).request("promote")
    if release.status == "running":
        if format is Format.JSON:
            emit_json(release.to_dict())
        else:
            console.print(f"promote requested for {release.id}; the running deploy continues")
        return
    _finish(release, format)


@deploy_app.command("abort", epilog=epilog(["tower deploy abort"], DEPLOY_EXITS))
def abort(
    ctx: typer.Context,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Stop the running deploy and roll it back."""
    spec, env, format = _options(ctx, spec, env, format)
    release = _engine(spec, env, format).request("abort")
    if format is Format.JSON:
        emit_json(release.to_dict())
    else:
        console.print(f"abort requested for {release.id} ({release.status})")


@deploy_app.command(
    "status",
    epilog=epilog(
        ["tower deploy status", "tower deploy status --format json"],
        "Exit codes: 0 shown; 2 bad usage.",
    ),
)
def status(
    ctx: typer.Context,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """The running deploy (if any), the release that serves traffic, and the traffic split."""
    spec, env, format = _options(ctx, spec, env, format)
    engine = _engine(spec, env, Format.JSON)
    recovered = engine.recover()
    active, current = engine.active(), engine.current()
    routes = engine.driver.routes()
    instances = engine.driver.instances()
    data = {
        "service": engine.spec.service.name,
        "environment": engine.environment,
        "recovered": [r.to_dict() for r in recovered],
        "active": active.to_dict() if active else None,
        "current": current.to_dict() if current else None,
        "holder": engine.lock.holder(),
        "routes": routes,
        "instances": [
            {
                "id": i.id,
                "release": i.release,
                "version": i.version,
                "state": i.state,
                "healthy": i.healthy,
                "address": i.address,
            }
            for i in instances
        ],
    }
    if format is Format.JSON:
        emit_json(data)
        return
    for release in recovered:
        console.print(f"recovered an interrupted deploy: {_summary(release)}")
    console.print(f"serving: {current.id + ' (' + current.version + ')' if current else 'nothing'}")
    if active:
        console.print(
            f"in progress: {active.id} ({active.version}) at {active.state}, held by {data['holder'] or 'nobody'}"
        )
    console.print("traffic: " + (", ".join(f"{k} {v:.0%}" for k, v in routes.items()) or "none"))
    for i in instances:
        console.print(
            f"  {i.id:<32} {i.version:<12} {i.state:<9} {'healthy' if i.healthy else 'not ready'} {i.address}"
        )


agent_app = typer.Typer(help="The local driver's agent (proxy and supervised processes).")


AGENT_EXITS = "Exit codes: 0 done; 1 the agent could not be started or stopped; 2 bad usage."


def _agent(spec: Path | None, env: str | None) -> AgentClient:
    from controltower.deploy import spec_root

    loaded = load(spec, env)
    if loaded.deploy.driver.value != "local":
        raise UsageError(
            f"[deploy] driver is {loaded.deploy.driver.value}; only the local driver has an agent"
        )
    return AgentClient((spec_root(loaded) / loaded.deploy.local.state_dir).resolve())


@agent_app.command(
    "start",
    epilog=epilog(
        ["tower deploy agent start", "tower deploy agent start --format json"], AGENT_EXITS
    ),
)
def agent_start(
    spec: SpecOption = None, env: EnvOption = None, format: FormatOption = Format.TEXT
) -> None:
    """Start the local agent (proxy and process supervisor) if it is not running."""
    client = _agent(spec, env)
    engine = _engine(spec, env, Format.JSON)
    engine.driver.prepare()
    info = client.call("ping")
    data = {
        "pid": info["pid"],
        "proxy": engine.driver.public_url(),
        "state_dir": str(client.state_dir),
    }
    if format is Format.JSON:
        emit_json(data)
    else:
        console.print(f"agent running (pid {data['pid']}); proxy at {data['proxy']}")


@agent_app.command(
    "stop",
    epilog=epilog(["tower deploy agent stop"], AGENT_EXITS),
)
def agent_stop(
    spec: SpecOption = None, env: EnvOption = None, format: FormatOption = Format.TEXT
) -> None:
    """Stop the local agent, its proxy and every app process it runs."""
    client = _agent(spec, env)
    was_running = client.alive()
    stopped = client.shutdown() if was_running else False
    if format is Format.JSON:
        emit_json({"was_running": was_running, "stopped": stopped})
    else:
        console.print(
            "agent stopped"
            if stopped
            else ("agent did not stop" if was_running else "agent was not running")
        )
    if was_running and not stopped:
        raise typer.Exit(EXIT_FAILED)


deploy_app.add_typer(agent_app, name="agent")


def rollback(
    release: Annotated[
        str | None, typer.Argument(help="Release id (prefix) to go back to.")
    ] = None,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Go back to the previous good release (or a named one), through the health gate."""
    engine = _engine(spec, env, format)
    engine.recover()
    _finish(engine.rollback(release), format)


def _table(releases: list[ReleaseView]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for column in ("id", "version", "strategy", "status", "started", "took", "by", "commit"):
        table.add_column(
            column,
            no_wrap=column in ("id", "status", "started"),
            overflow="ellipsis",
            max_width=None if column in ("id", "version") else 12,
        )
    for r in releases:
        style = STYLE.get(r.status, "")
        table.add_row(
            r.id,
            r.version,
            r.strategy,
            f"[{style}]{r.status}[/{style}]" if style else r.status,
            f"{r.created_at:%m-%d %H:%M}",
            format_duration(r.duration) if r.duration is not None else "-",
            r.actor.split("@")[0],
            r.git_commit[:7],
        )
    return table


def _reasons(releases: list[ReleaseView]) -> list[str]:
    return [f"{r.id}: {r.reason}" for r in releases if r.reason and r.status != "succeeded"]


def _dora_text(figures: dict[str, object]) -> str:
    def dur(value: object) -> str:
        return format_duration(float(value)) if isinstance(value, int | float) else "-"

    rate = figures["change_failure_rate"]
    return (
        f"last {figures['days']:g} days: {figures['deploys']} deploys, "
        f"{figures['deploys_per_day']:.2f}/day; change failure rate "
        f"{'-' if rate is None else f'{float(rate):.0%}'}; time to restore "  # type: ignore[arg-type]
        f"{dur(figures['time_to_restore'])}; lead time {dur(figures['lead_time'])}; "
        f"{figures.get('refused', 0)} refused before traffic (not failed changes)"
    )


@releases_app.callback()
def releases(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many releases to list.")] = 20,
    dora_: Annotated[bool, typer.Option("--dora", help="Add DORA figures.")] = False,
    days: Annotated[float, typer.Option("--days", help="Period for DORA figures.")] = 30.0,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """List releases, newest first."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"spec": spec, "env": env, "format": format}
        return
    engine = _engine(spec, env, format)
    engine.recover()
    shown = engine.releases(limit)
    figures = (
        dora_figures(engine.store, engine.service_id, now=utcnow(), days=days).to_dict()
        if dora_
        else None
    )
    if format is Format.JSON:
        emit_json(
            {"releases": [r.to_dict() for r in shown], **({"dora": figures} if figures else {})}
        )
        return
    console.print(_table(shown))
    for line in _reasons(shown):
        console.print(f"  {line}", soft_wrap=True, markup=False)
    if figures:
        console.print(_dora_text(figures))


@releases_app.command(
    "show", epilog=epilog(["tower releases show r2026", "tower releases show r2026 --format json"])
)
def show(
    ctx: typer.Context,
    release: Annotated[str, typer.Argument(help="Release id (prefix).")],
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """One release and its timestamped step log."""
    spec, env, format = _options(ctx, spec, env, format)
    found = _engine(spec, env, format).show(release)
    if format is Format.JSON:
        emit_json(found.to_dict(steps=True))
        return
    console.print(_summary(found), soft_wrap=True)
    console.print(_artifact(found), soft_wrap=True, markup=False)
    for line in found.steps:
        console.print(
            f"  {line.at:%H:%M:%S.%f}"[:-3] + f" {line.state:<18} {line.message}",
            soft_wrap=True,
            markup=False,
        )


@releases_app.command("stats", epilog=epilog(["tower releases stats --days 90"]))
def stats(
    ctx: typer.Context,
    days: Annotated[float, typer.Option("--days")] = 30.0,
    spec: SpecOption = None,
    env: EnvOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """DORA figures: deployment frequency, change failure rate, time to restore, lead time."""
    spec, env, format = _options(ctx, spec, env, format)
    engine = _engine(spec, env, format)
    figures = dora_figures(engine.store, engine.service_id, now=utcnow(), days=days).to_dict()
    if format is Format.JSON:
        emit_json(figures)
    else:
        console.print(_dora_text(figures))


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "-"


def register(app: typer.Typer) -> None:
    deploy_app.info.epilog = epilog(
        [
            "tower deploy --version 1.4.0",
            "tower deploy --version 1.4.1 --strategy canary --set APP_VERSION=1.4.1",
            "tower deploy --image registry.fly.io/shop:abc123 --env production",
            "tower deploy promote",
            "tower deploy status --format json",
        ],
        DEPLOY_EXITS,
    )
    app.add_typer(deploy_app, name="deploy")
    app.command(
        "rollback",
        epilog=epilog(["tower rollback", "tower rollback r20261125-abc123"], DEPLOY_EXITS),
    )(rollback)
    releases_app.info.epilog = epilog(
        [
            "tower releases",
            "tower releases --dora --days 90",
            "tower releases show r2026",
            "tower releases --format json",
        ],
        "Exit codes: 0 listed; 2 bad usage or an invalid tower.toml.",
    )
    app.add_typer(releases_app, name="releases")
