"""fly.toml, sized and checked from tower.toml.

The result holds what a Fly app needs to be production-ready: the VM size of
``[service]``, HTTP checks on the spec's health paths, request-based
concurrency limits, the deploy strategy, a migration ``release_command`` (never
a build), graceful ``kill_signal``/``kill_timeout``, and ``[metrics]``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from controltower.generate.common import App
from controltower.generate.files import GeneratedFile, Reconciled, parse_existing
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


def metrics_path(spec: Spec) -> str:
    """``[health] metrics``: where the app serves Prometheus text, as the checks probe it."""
    return spec.health.metrics


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
    # Fly routes by the http_service checks: liveness only, so a dependency that is down
    # (what readiness reports) cannot take every machine out of routing at once. Readiness
    # is a top-level machine check: watched and shown by Fly, never routed by.
    checks = tomlkit.aot()
    timeout = max(2.0, spec.health.timeout * 2)
    checks.append(
        _table(
            grace_period="10s",
            interval="15s",
            method="GET",
            timeout=format_duration(timeout),
            path=spec.health.liveness,
        )
    )
    http["checks"] = checks
    doc["http_service"] = http
    if spec.health.readiness != spec.health.liveness:
        doc["checks"] = _table(
            readiness=_table(
                type="http",
                port=app.port,
                path=spec.health.readiness,
                method="GET",
                interval="30s",
                timeout=format_duration(timeout),
                grace_period="30s",
            )
        )

    vm = tomlkit.aot()
    vm.append(
        _table(
            memory=format_size(app.memory_mb * 1024 * 1024), cpu_kind=app.cpu_kind, cpus=app.cpus
        )
    )
    doc["vm"] = vm

    doc["metrics"] = _table(port=app.port, path=metrics_path(spec))
    text = tomlkit.dumps(doc)
    return GeneratedFile(
        spec.service.fly_toml,
        text,
        merge_toml=True,
        notes=tuple(notes),
        reconcile=lambda existing: reconcile(spec, app, text, existing),
    )


# ---- an existing fly.toml: keep the user's values unless a check requires a change ----------

CREDENTIALS_IN_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


def _fill(target: Any, source: Any) -> None:
    """Add the keys of ``source`` that ``target`` lacks; never change a value ``target`` has."""
    for key, value in source.items():
        if key not in target:
            if key == "http_service" and "services" in target:
                continue  # the user routes traffic with [[services]]: no second service
            target[key] = value
        elif isinstance(value, Table) and isinstance(target[key], Table):
            _fill(target[key], value)


def _secret(spec: Spec, key: str, value: Any) -> bool:
    from controltower.checks.static.docker import SECRET_VALUES, sensitive

    var = spec.env.vars.get(key)
    raw = str(value)
    return (
        (var is not None and var.secret)
        or sensitive(key)
        or raw.startswith(SECRET_VALUES)
        or bool(CREDENTIALS_IN_URL.match(raw))
    )


def _service(doc: Any) -> Any:
    service = doc.get("http_service")
    return service if isinstance(service, Table) else None


def _vms(doc: Any) -> list[Any]:
    vm = doc.get("vm")
    if isinstance(vm, AoT):
        return list(vm.body)
    return [vm] if isinstance(vm, Table) else []


def _fix_memory(doc: Any, gen: Any) -> str:
    memory = gen["vm"][0]["memory"]
    vms = _vms(doc)
    for vm in vms:
        if "memory_mb" in vm:
            del vm["memory_mb"]
        vm["memory"] = memory
    return f"[[vm]] memory set to {memory}" if vms else ""


def _fix_service_key(*keys: str) -> Callable[[Any, Any], str]:
    def fix(doc: Any, gen: Any) -> str:
        service = _service(doc)
        if service is None:
            return ""
        for key in keys:
            service[key] = gen["http_service"][key]
        return "[http_service] " + ", ".join(
            f"{key} set to {tomlkit.dumps({key: gen['http_service'][key]}).strip().split(' = ', 1)[1]}"
            if not isinstance(gen["http_service"][key], (Table, AoT))
            else f"{key} set as generated"
            for key in keys
        )

    return fix


def _fix_strategy(doc: Any, gen: Any) -> str:
    doc.setdefault("deploy", tomlkit.table())
    doc["deploy"]["strategy"] = gen["deploy"]["strategy"]
    return f"[deploy] strategy set to {gen['deploy']['strategy']}"


def _fix_release(doc: Any, gen: Any) -> str:
    deploy = doc.get("deploy")
    if deploy is None:
        return ""
    wanted = gen["deploy"].get("release_command")
    if wanted:
        deploy["release_command"] = wanted
        return f"[deploy] release_command set to {wanted!r}"
    if "release_command" in deploy:
        del deploy["release_command"]
        return "[deploy] release_command removed (no migration tool found to run instead)"
    return ""


def _fix_kill(doc: Any, gen: Any) -> str:
    from controltower.checks.static.flyschema import seconds

    done = []
    if not doc.get("kill_signal"):
        doc["kill_signal"] = gen["kill_signal"]
        done.append(f"kill_signal set to {gen['kill_signal']}")
    timeout = seconds(doc.get("kill_timeout"))
    if timeout is None or timeout < 5:
        doc["kill_timeout"] = gen["kill_timeout"]
        done.append(f"kill_timeout set to {gen['kill_timeout']}")
    return ", ".join(done)


def _fix_metrics(doc: Any, gen: Any) -> str:
    doc["metrics"] = gen["metrics"]
    return "[metrics] added"


FIXERS: dict[str, Callable[[Any, Any], str]] = {
    "fly.memory": _fix_memory,
    "fly.health_checks": _fix_service_key("checks"),
    "fly.concurrency": _fix_service_key("concurrency"),
    "fly.min_machines": _fix_service_key("min_machines_running"),
    "fly.auto_stop": _fix_service_key("auto_stop_machines", "auto_start_machines"),
    "fly.force_https": _fix_service_key("force_https"),
    "fly.deploy_strategy": _fix_strategy,
    "fly.release_command": _fix_release,
    "fly.kill": _fix_kill,
    "fly.metrics": _fix_metrics,
}
"""What each fly.toml check needs changed when it fails; nothing else is touched."""


def failing(spec: Spec, root: Path, name: str, text: str) -> list[tuple[str, str]]:
    """(check id, message) of every fly.toml check with a fixer that fails on ``text``."""
    from controltower.checks.base import CheckContext, registered
    from controltower.checks.model import Status
    from controltower.checks.static.fly import FlyCheck
    from controltower.checks.static.flyconfig import normalize

    data = tomllib.loads(text)
    ctx = CheckContext(spec=spec, root=root)
    out = []
    for check_id, cls in registered().items():
        if check_id in FIXERS and issubclass(cls, FlyCheck):
            check = cls()
            outcome = check.judge(ctx, name, text, data if check.raw else normalize(data))
            if outcome.status is Status.FAIL:
                out.append((check_id, outcome.message))
    return out


def reconcile(spec: Spec, app: App, generated: str, existing: str) -> Reconciled:
    """The user's fly.toml with the keys it lacks added, secrets moved out of [env] and
    [build.args], and only the values a failing check names changed, each with its reason."""
    doc = parse_existing(existing, spec.service.fly_toml)
    _fill(doc, tomlkit.parse(generated))
    notes: list[str] = []
    redact: list[str] = []
    fly_app = str(doc.get("app") or app.fly_app)
    build = doc.get("build")
    for section, table in (
        ("env", doc.get("env")),
        ("build.args", build.get("args") if isinstance(build, Table) else None),
    ):
        if not isinstance(table, Table):
            continue
        for key in [k for k, v in table.items() if _secret(spec, k, v)]:
            del table[key]
            redact.append(key)
            notes.append(
                f"fly.env_secrets: {key} removed from [{section}] (fly.toml is committed; the "
                f"value is not copied anywhere). Set it as a secret, then rotate it: "
                f"fly secrets set {key}=<value> -a {fly_app}"
            )
    root = app.root
    for _ in range(3):
        changed = False
        for check_id, message in failing(spec, root, spec.service.fly_toml, tomlkit.dumps(doc)):
            what = FIXERS[check_id](doc, tomlkit.parse(generated))
            if what:
                notes.append(f"{check_id}: {message}; {what}")
                changed = True
        if not changed:
            break
    return Reconciled(tomlkit.dumps(doc), notes, redact)
