"""``tower monitor``: run the monitors; ``tower monitor test <name>`` runs one once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

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
    err_console,
    load,
)
from controltower.exceptions import UsageError
from controltower.spec import Spec
from controltower.store import Store, redact_url
from controltower.units import format_duration

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (default: [store] url, $TOWER_DATABASE_URL, or .tower/tower.db).",
        show_default=False,
    ),
]


def spec_root(spec: Spec) -> Path:
    return Path(spec.source).resolve().parent


def open_store(spec: Spec, url: str | None) -> Store:
    chosen = url or (spec.store.url.get_secret_value() if spec.store.url else None)
    return Store.open(chosen, root=spec_root(spec))


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(
            f"--listen {value!r} is not host:port", hint="e.g. --listen 127.0.0.1:8601"
        )
    return host or "127.0.0.1", int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for the heartbeat routes, or a UsageError saying what is in the way."""
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port} for heartbeat pings: {exc.strerror or exc}",
            hint="another `tower monitor` on this host? give each its own --listen port, "
            "or --listen '' for workers that need not take pings",
        ) from None
    sock.setblocking(False)
    return sock


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _serve(
    spec: Spec,
    store: Store,
    *,
    listen: str,
    owner: str,
    lease_ttl: float,
    concurrency: int,
    duration: float | None,
    quiet: bool,
    deliver: bool = True,
) -> dict[str, Any]:
    import uvicorn
    from starlette.applications import Starlette

    from controltower.deploy.reconciler import DeployReconciler
    from controltower.monitor import MonitorRunner, RunnerOptions, heartbeat_routes

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    stop = asyncio.Event()
    runner = MonitorRunner(
        spec,
        store,
        options=RunnerOptions(
            owner=owner, lease_ttl=lease_ttl, concurrency=concurrency, deliver=deliver
        ),
        root=spec_root(spec),
    )
    server: _Server | None = None
    tasks: list[asyncio.Task[Any]] = []
    with _signals(stop):
        if listen:
            host, port = parse_listen(listen)
            sock = bind(host, port)
            listen = f"{host}:{sock.getsockname()[1]}"
            routes = await asyncio.to_thread(heartbeat_routes, store, spec)
            config = uvicorn.Config(
                Starlette(routes=routes),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
            server = _Server(config)
            tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        tasks.append(asyncio.create_task(DeployReconciler(spec, store).run(stop)))
        tasks.append(asyncio.create_task(runner.run(stop)))
        if not quiet:
            from controltower.notify import build_channels

            for name, problem in build_channels(spec.alerts)[1].items():
                err_console.print(
                    f"warning: channel {name} cannot be used; its notifications wait in the "
                    f"outbox until it is fixed (or [alerts.delivery] max_age passes): "
                    f"{problem}",
                    markup=False,
                    soft_wrap=True,
                )
            where = f", heartbeats on http://{listen}/ping/<monitor>" if listen else ""
            console.print(
                f"watching {plural(len(spec.monitors), 'monitor')} of {spec.service.name} "
                f"as {runner.options.owner} (leases {runner.options.lease_ttl:g}s) "
                f"(store {redact_url(store.url)}){where}; Ctrl-C stops",
                markup=False,
                soft_wrap=True,
            )
        started = time.monotonic()
        last_report = started
        while not stop.is_set():
            if duration is not None and time.monotonic() - started >= duration:
                stop.set()
                break
            if tasks[-1].done():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if not quiet and time.monotonic() - last_report >= 30:
                last_report = time.monotonic()
                stats = runner.stats()
                console.print(
                    f"{stats['monitors']} monitors held, {stats['checks']} checks, "
                    f"drift p99 {stats['drift_p99'] * 1000:.0f}ms"
                    + (", alerting leader" if stats["leader"] else ""),
                    markup=False,
                )
        stop.set()
        if server is not None:
            server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
    return runner.stats()


def monitor(
    ctx: typer.Context,
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    listen: Annotated[
        str,
        typer.Option(help="Serve heartbeat pings on host:port; empty to not listen."),
    ] = "127.0.0.1:8601",
    owner: Annotated[
        str | None,
        typer.Option(
            help="Worker name for leases, stable across restarts (default: host, service, "
            "environment and spec file); give each worker on one host its own."
        ),
    ] = None,
    lease_ttl: Annotated[
        float | None,
        typer.Option(
            help="Seconds a worker's monitor leases last without renewal "
            "(default: half the shortest monitor interval, 1 to 15)."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Checks in flight at most.")] = 200,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: run until stopped)."),
    ] = None,
    deliver: Annotated[
        bool,
        typer.Option(
            "--deliver/--no-deliver",
            help="Deliver the notification outbox from this process (any number may).",
        ),
    ] = True,
    format: FormatOption = Format.TEXT,
) -> None:
    """Run the monitors of tower.toml: check, record, alert, notify; share work with other workers.

    Several workers on one PostgreSQL store split the monitors between them and
    take over from one that dies; one of them runs the alerting at a time.
    """
    if ctx.invoked_subcommand is not None:
        return
    loaded = load(spec, env)
    opened = open_store(loaded, store)
    try:
        stats = asyncio.run(
            _serve(
                loaded,
                opened,
                listen=listen,
                owner=owner or "",
                lease_ttl=lease_ttl or 0.0,
                concurrency=concurrency,
                duration=duration,
                quiet=format is Format.JSON,
                deliver=deliver,
            )
        )
    finally:
        opened.close()
    if format is Format.JSON:
        emit_json(stats)
    else:
        console.print(
            f"stopped: {stats['checks']} checks run, {stats['written']} results written, "
            f"drift p99 {stats['drift_p99'] * 1000:.0f}ms",
            markup=False,
        )


def test(
    name: Annotated[str, typer.Argument(help="The monitor to run once.")],
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Run one monitor once and show each condition with what it observed."""
    from controltower.monitor import ProbeEnv, check
    from controltower.monitor.heartbeat import last_ping
    from controltower.monitor.registry import sync_monitors

    loaded = load(spec, env)
    monitors = {m.name: m for m in loaded.monitors}
    if name not in monitors:
        raise UsageError(
            f"there is no monitor named {name!r}",
            hint=f"monitors: {', '.join(sorted(monitors)) or 'none'}",
        )
    monitor_spec = monitors[name]
    opened: Store | None = None
    env_probe = ProbeEnv.for_spec(loaded, root=spec_root(loaded))
    if monitor_spec.type.value == "heartbeat":
        opened = open_store(loaded, store)
        _service, ids = sync_monitors(opened, loaded)
        store_ref = opened
        env_probe.last_ping = lambda monitor: last_ping(store_ref, ids[monitor])
    if monitor_spec.type.value == "vitals":
        from controltower.clock import system_clock
        from controltower.ingest.vitals import for_monitor

        opened = open_store(loaded, store)
        vitals_store = opened
        env_probe.vitals = lambda monitor: for_monitor(vitals_store, monitor, system_clock.now())

    async def once() -> Any:
        try:
            return await check(monitor_spec, env_probe)
        finally:
            await env_probe.aclose()

    try:
        outcome = asyncio.run(once())
    finally:
        if opened is not None:
            opened.close()
    rows = [("condition", r) for r in outcome.results] + [("warning", r) for r in outcome.warnings]
    if format is Format.JSON:
        emit_json(
            {
                "monitor": name,
                "level": outcome.level,
                "ok": outcome.ok,
                "latency_ms": round(outcome.latency * 1000, 3),
                "error": outcome.error,
                "conditions": [
                    {"kind": kind, "condition": r.condition, "ok": r.ok, "observed": r.observed}
                    for kind, r in rows
                ],
            }
        )
    else:
        table = Table(title=f"{name} ({monitor_spec.type.value})", show_lines=False)
        table.add_column("kind")
        table.add_column("condition")
        table.add_column("observed")
        table.add_column("result")
        for kind, result in rows:
            observed = result.message.split(": observed ", 1)[-1].rsplit(" (", 1)[0]
            table.add_row(kind, result.condition, observed, "pass" if result.ok else "FAIL")
        console.print(table)
        if outcome.error:
            console.print(f"error: {outcome.error}", markup=False)
        console.print(f"{name}: {outcome.level} in {outcome.latency * 1000:.0f}ms", markup=False)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    return f"{format_duration(max(0.0, (now - value).total_seconds()))} ago"


def status(
    spec: SpecOption = None,
    env: EnvOption = None,
    store: StoreOption = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Show each monitor: level, alert, uptime over 1 h, 24 h, 7 d, 30 d, SLO budget left."""
    from controltower.clock import utcnow
    from controltower.monitor.status import monitor_status

    loaded = load(spec, env)
    opened = open_store(loaded, store)
    try:
        found = monitor_status(opened, loaded)
    finally:
        opened.close()
    alerting = [item.name for item in found if item.alert in ("pending", "firing")]
    if format is Format.JSON:
        emit_json([item.to_dict() for item in found])
    else:
        now = utcnow()
        table = Table(show_lines=False)
        for column in ("monitor", "type", "level", "alert", "checked", "1h", "24h", "7d", "30d"):
            table.add_column(column)
        table.add_column("SLO / budget left")
        table.add_column("held by")
        for item in found:
            windows = item.uptime.windows
            slo = (
                f"{item.uptime.slo * 100:g}% / {_percent(item.uptime.budget_remaining)}"
                if item.uptime.slo is not None
                else "-"
            )
            table.add_row(
                item.name,
                item.type,
                item.level,
                item.alert,
                _ago(item.last_check_at, now),
                *(_percent(windows[label]) for label in ("1h", "24h", "7d", "30d")),
                slo,
                item.held_by or "-",
            )
        console.print(table)
        console.print(
            f"{len(found)} monitors; "
            + (f"alerting: {', '.join(alerting)}" if alerting else "no alert pending or firing"),
            markup=False,
        )
    if alerting:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="monitor",
        invoke_without_command=True,
        no_args_is_help=False,
        help="Run the monitors of tower.toml, or test one.",
        rich_markup_mode=None,
    )
    group.callback(
        invoke_without_command=True,
        epilog=epilog(
            [
                "tower monitor",
                "tower monitor --env production --listen 0.0.0.0:8601",
                "TOWER_DATABASE_URL=postgresql://... tower monitor   # run two: they share the work",
                "tower monitor test api",
            ],
            "Exit codes: 0 stopped cleanly; 1 a failure stopped it; 2 bad usage or an invalid tower.toml.",
        ),
    )(monitor)
    group.command(
        "test",
        epilog=epilog(
            ["tower monitor test api", "tower monitor test api --format json"],
            "Exit codes: 0 every condition passes; 1 the check failed or warned; 2 bad usage.",
        ),
    )(test)
    group.command(
        "status",
        epilog=epilog(
            ["tower monitor status", "tower monitor status --format json"],
            "Exit codes: 0 no alert is pending or firing; 1 some alert is; 2 bad usage.",
        ),
    )(status)
    app.add_typer(group)
