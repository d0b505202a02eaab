"""fly.toml, sized and checked from tower.toml.

The result holds what a Fly app needs to be production-ready: the VM size of
``[service]``, HTTP checks on the spec's health paths, request-based
concurrency limits, the deploy strategy, a migration ``release_command`` (never
a build), graceful ``kill_signal``/``kill_timeout``, and ``[metrics]``.
"""

from __future__ import annotations

import tomlkit
from tomlkit.items import Table

from controltower.generate.common import App
from controltower.generate.files import GeneratedFile
from controltower.spec import Spec
from controltower.spec.deploy import Strategy
from controltower.spec.service import Stack
from controltower.units import format_duration, format_size

_STRATEGY = {
    Strategy.IMMEDIATE: "immediate",
    Strategy.ROLLING: "rolling",
    Strategy.BLUEGREEN: "bluegreen",
    Strategy.CANARY: "canary",
}


def concurrency(app: App) -> tuple[int, int]:
    """Soft and hard request limits per machine, from its memory and CPUs."""
    per_512 = 25 if app.stack is Stack.NEXTJS else 50
    soft = max(10, per_512 * app.memory_mb // 512 * app.cpus)
    return soft, soft + max(5, soft // 4)


def metrics_path(app: App) -> str:
    return "/api/metrics" if app.stack is Stack.NEXTJS else "/metrics"


def _table(**values: object) -> Table:
    table = tomlkit.table()
    for key, value in values.items():
        table[key] = value
    return table


def fly_toml(spec: Spec, app: App) -> GeneratedFile:
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"fly.toml for {app.name}, written by `tower generate fly-toml`."))
    doc.add(tomlkit.comment("Edit tower.toml and generate again; comments and extra keys survive."))
    doc["app"] = app.fly_app
    doc["primary_region"] = app.region
    doc["kill_signal"] = "SIGTERM"
    doc["kill_timeout"] = max(5, int(spec.deploy.drain_timeout))
    doc.add(tomlkit.nl())

    doc["build"] = _table(dockerfile=spec.service.dockerfile)

    deploy = _table(strategy=_STRATEGY[spec.deploy.strategy])
    notes: list[str] = []
    if app.migration:
        deploy["release_command"] = app.migration
        deploy["release_command"].comment("migrations run once per release, before traffic moves")
    else:
        notes.append(
            "no migration tool found (prisma, drizzle, alembic, django): "
            "pass --release-command if the app migrates a database"
        )
    doc["deploy"] = deploy

    env = tomlkit.table()
    env["PORT"] = str(app.port)
    if app.is_node:
        env["NODE_ENV"] = "production"
        env["NODE_OPTIONS"] = f"--max-old-space-size={app.heap_mb}"
    doc["env"] = env

    soft, hard = concurrency(app)
    http = tomlkit.table()
    http["internal_port"] = app.port
    http["force_https"] = True
    http["auto_stop_machines"] = "off" if app.production else "stop"
    http["auto_start_machines"] = True
    http["min_machines_running"] = 2 if app.production else 1
    http["concurrency"] = _table(type="requests", soft_limit=soft, hard_limit=hard)
    checks = tomlkit.aot()
    timeout = max(2.0, spec.health.timeout * 2)
    for path, grace in ((spec.health.readiness, "30s"), (spec.health.liveness, "10s")):
        checks.append(
            _table(
                grace_period=grace,
                interval="15s",
                method="GET",
                timeout=format_duration(timeout),
                path=path,
            )
        )
    http["checks"] = checks
    doc["http_service"] = http

    vm = tomlkit.aot()
    vm.append(
        _table(
            memory=format_size(app.memory_mb * 1024 * 1024), cpu_kind=app.cpu_kind, cpus=app.cpus
        )
    )
    doc["vm"] = vm

    doc["metrics"] = _table(port=app.port, path=metrics_path(app))
    return GeneratedFile(
        spec.service.fly_toml, tomlkit.dumps(doc), merge_toml=True, notes=tuple(notes)
    )
