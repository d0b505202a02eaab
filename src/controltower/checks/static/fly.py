"""fly.toml: validated against Fly's schema, then judged for production."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Location,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)
from controltower.checks.static.files import fly_toml, line_of
from controltower.checks.static.flyconfig import normalize, tables, vm_memory_mb
from controltower.checks.static.flyschema import dotted, seconds, validate
from controltower.spec import tomlscan
from controltower.spec.service import Target

FLY = frozenset({Target.FLY})
BUILD_COMMAND = re.compile(
    r"\b(npm|pnpm|yarn|bun)\s+(run\s+)?build\b|\bnext\s+build\b|\bvite\s+build\b|\bmake\s+build\b"
)
MIGRATION = re.compile(
    r"migrat|prisma\s+(migrate|db\s+push)|drizzle|alembic|knex|sequelize|flyway|liquibase|manage\.py\s+migrate|db:",
    re.IGNORECASE,
)


def generated_fly_toml(ctx: CheckContext) -> str:
    """The fly.toml ``tower generate fly-toml`` would write, or "" when it cannot."""
    from controltower.generate import build

    try:
        return build(ctx.spec, "fly-toml", ctx.root)[0].content
    except Exception:  # the fix is a convenience; the finding stands without it
        return ""


class FlyCheck(Check):
    targets: ClassVar[frozenset[Target]] = FLY

    async def run(self, ctx: CheckContext) -> Outcome:
        loaded = await fly_toml(ctx)
        if loaded is None:
            return (
                failed(
                    f"no {ctx.spec.service.fly_toml} in {ctx.root}",
                    Fix(
                        "Create it with `tower generate fly-toml` (its content, from tower.toml, is below)",
                        ctx.spec.service.fly_toml,
                        generated_fly_toml(ctx),
                    ),
                )
                if self.id == "fly.config"
                else skipped(f"no {ctx.spec.service.fly_toml}")
            )
        name, text, data = loaded
        if "__error__" in data:
            if self.id == "fly.config":
                error = str(data["__error__"])
                match = re.search(r"at line (\d+)", error)
                return failed(
                    f"{name} is not valid TOML: {error}",
                    Fix("Fix the TOML syntax at the line given", name),
                    location=Location(name, int(match.group(1)) if match else 0),
                )
            return skipped(f"{name} does not parse")
        return self.judge(ctx, name, text, data if self.raw else normalize(data))

    raw: ClassVar[bool] = False

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        raise NotImplementedError

    @staticmethod
    def service(data: dict[str, Any]) -> dict[str, Any]:
        """The service that takes HTTP traffic: [http_service], else the first [[services]]."""
        http = data.get("http_service")
        if isinstance(http, dict):
            return http
        services = tables(data.get("services") or [])
        return services[0] if services and isinstance(services[0], dict) else {}


@register
class FlyConfig(FlyCheck):
    """fly.toml exists, parses, and every key and value fits Fly's configuration reference:
    known keys, types, allowed values, ranges (kill_timeout, check intervals, volume sizes,
    VM memory per CPU) and cross-key rules (process groups, canary/bluegreen with volumes,
    force_https on an http handler)."""

    id = "fly.config"
    title = "fly.toml exists and every key fits Fly's schema"
    category = Category.CONFIG
    gate = Gate.CORE
    severity = Severity.HIGH
    raw = True
    remedy = (
        "Fix each key listed; `tower generate fly-toml` writes a complete file from tower.toml."
    )

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        lines = tomlscan.key_lines(text)
        found = validate(data)
        if not data.get("app"):
            found.insert(0, (("app",), "missing (the Fly app name)"))
        if not data.get("http_service") and not data.get("services"):
            found.append((("http_service",), "missing: nothing routes traffic to the app"))
        if not found:
            return passed(f"{name} fits Fly's schema")
        located = sorted(
            ((tomlscan.line_of(lines, path), dotted(path), message) for path, message in found),
            key=lambda item: item[0],
        )
        details = [f"line {line}: {key}: {message}" for line, key, message in located]
        first_line, first_key, first_message = located[0]
        return failed(
            f"{len(found)} problem{'s' if len(found) != 1 else ''} in {name}; first: {first_key}: {first_message}",
            Fix(
                "Fix each key listed (Fly's reference: https://fly.io/docs/reference/configuration/)",
                name,
            ),
            location=Location(name, first_line),
            details=details,
        )


@register
class FlyMemory(FlyCheck):
    """The VM serving the HTTP service has at least 512 MB and at least [service] memory."""

    id = "fly.memory"
    title = "The VM has at least 512 MB and what the app needs"
    category = Category.RELIABILITY
    gate = Gate.CORE
    severity = Severity.HIGH
    remedy = "Give [[vm]] memory = '<MB>mb' with at least what the app needs."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        have = vm_memory_mb(data)
        need = max(512, ctx.spec.service.memory // (1024 * 1024))
        if have < need:
            return failed(
                f"the VM has {have} MB; the app needs at least {need} MB",
                Fix(
                    f"Give the VM {need} MB",
                    name,
                    f"[[vm]]\n  memory = '{need}mb'\n  cpu_kind = 'shared'\n  cpus = 1",
                ),
                location=Location(name, line_of(text, r"^\[\[vm\]\]")),
                memory_mb=have,
            )
        return passed(f"{have} MB (needs {need} MB)", memory_mb=have)


@register
class FlyHealthChecks(FlyCheck):
    """The HTTP service has HTTP checks whose path is one of the spec's health paths
    (liveness, readiness, simple); top-level [checks] alone is a warning, as they do not
    steer traffic."""

    id = "fly.health_checks"
    title = "The HTTP service has health checks on the spec's health path"
    category = Category.HEALTH
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = (
        "Add [[http_service.checks]] with path = the readiness path, an interval and a timeout."
    )

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        health = ctx.spec.health
        paths = {p for p in (health.liveness, health.readiness, health.simple) if p}
        service = self.service(data)
        checks = [
            c
            for c in tables(service.get("checks") or service.get("http_checks") or [])
            if isinstance(c, dict)
        ]
        top = [
            c
            for c in (data.get("checks") or {}).values()
            if isinstance(c, dict) and c.get("type") == "http"
        ]
        seen = {str(c.get("path", "")) for c in [*checks, *top]}
        section = "http_service.checks" if "http_service" in data else "services.http_checks"
        fix = Fix(
            "Add an HTTP check on the readiness path",
            name,
            f"[[{section}]]\n  grace_period = '10s'\n  interval = '15s'\n  method = 'GET'\n"
            f"  timeout = '2s'\n  path = '{health.readiness}'",
        )
        if not checks and not top:
            return failed("the HTTP service has no health checks", fix)
        if not seen & paths:
            return failed(
                f"health checks probe {', '.join(sorted(seen)) or '(no path)'}, not {', '.join(sorted(paths))}",
                fix,
                location=Location(name, line_of(text, r"checks\]")),
            )
        if not checks:
            return warned(
                "only top-level [checks] probe the health path: they do not take failing machines out of the load balancer",
                fix,
                location=Location(name, line_of(text, r"^\[checks")),
            )
        return passed(f"checks on {', '.join(sorted(seen & paths))}")


@register
class FlyConcurrency(FlyCheck):
    """The HTTP service's concurrency is type requests with soft_limit and hard_limit, soft
    not above hard."""

    id = "fly.concurrency"
    title = "Concurrency is counted in requests with soft and hard limits"
    category = Category.PERFORMANCE
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Add [http_service.concurrency] with type = 'requests', soft_limit and hard_limit."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        concurrency = self.service(data).get("concurrency") or {}
        section = "http_service" if "http_service" in data else "services"
        fix = Fix(
            "Limit concurrency per machine in requests",
            name,
            f"[{section}.concurrency]\n  type = 'requests'\n  soft_limit = 200\n  hard_limit = 250",
        )
        problems = []
        if concurrency.get("type") != "requests":
            problems.append(
                f"type is {concurrency.get('type', 'connections (default)')!s}, not requests"
            )
        soft, hard = concurrency.get("soft_limit"), concurrency.get("hard_limit")
        if soft is None:
            problems.append("no soft_limit")
        if hard is None:
            problems.append("no hard_limit")
        if isinstance(soft, int) and isinstance(hard, int) and soft > hard:
            problems.append(f"soft_limit {soft} is above hard_limit {hard}")
        if problems:
            return failed(
                "; ".join(problems),
                fix,
                location=Location(
                    name, line_of(text, r"concurrency\]") or line_of(text, rf"^\[+{section}")
                ),
            )
        return passed(f"requests, soft {soft}, hard {hard}")


@register
class FlyMinMachines(FlyCheck):
    """min_machines_running is at least 1 (at least 2 in production)."""

    id = "fly.min_machines"
    title = "Machines keep running: at least 1, at least 2 in production"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Set min_machines_running = 2 under [http_service] for production."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        running = self.service(data).get("min_machines_running", 0)
        need = 2 if ctx.is_production else 1
        if not isinstance(running, int) or running < need:
            where = "in production " if ctx.is_production else ""
            return failed(
                f"min_machines_running is {running}; {where}it must be at least {need}",
                Fix(
                    f"Keep {need} machine{'s' if need > 1 else ''} running",
                    name,
                    f"[http_service]\n  min_machines_running = {need}",
                ),
                location=Location(name, line_of(text, r"min_machines_running")),
            )
        return passed(f"min_machines_running = {running}")


@register
class FlyAutoStop(FlyCheck):
    """In production, auto_stop_machines is off, so no machine stops when idle and cold-
    starts on the next request."""

    id = "fly.auto_stop"
    title = "Machines are not stopped automatically in production"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    production_only = True
    remedy = "Set auto_stop_machines = 'off' under [http_service]."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        value = self.service(data).get("auto_stop_machines", "off")
        if value not in (False, "off"):
            return failed(
                f"auto_stop_machines = {value!r}: production machines stop when idle and cold-start on traffic",
                Fix(
                    "Turn auto stop off in production",
                    name,
                    "[http_service]\n  auto_stop_machines = 'off'",
                ),
                location=Location(name, line_of(text, r"auto_stop_machines")),
            )
        return passed("auto_stop_machines is off")


@register
class FlyForceHttps(FlyCheck):
    """force_https is on for the HTTP service (or on an http port of [[services]])."""

    id = "fly.force_https"
    title = "HTTP is redirected to HTTPS by the proxy"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Set force_https = true under [http_service]."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        service = self.service(data)
        forced = service.get("force_https") is True or any(
            isinstance(p, dict) and p.get("force_https") is True for p in service.get("ports", [])
        )
        if not forced:
            return failed(
                "force_https is not on",
                Fix("Redirect HTTP to HTTPS", name, "[http_service]\n  force_https = true"),
                location=Location(
                    name, line_of(text, r"force_https") or line_of(text, r"^\[http_service\]")
                ),
            )
        return passed("force_https = true")


@register
class FlyDeployStrategy(FlyCheck):
    """[deploy] strategy is set (immediate in production is a warning)."""

    id = "fly.deploy_strategy"
    title = "A deploy strategy is chosen"
    category = Category.DELIVERY
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    remedy = "Choose rolling, canary or bluegreen under [deploy]."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        strategy = (data.get("deploy") or {}).get("strategy")
        if not strategy:
            return failed(
                "no [deploy] strategy: Fly picks one by machine count",
                Fix("Choose a strategy", name, "[deploy]\n  strategy = 'rolling'"),
            )
        if strategy == "immediate" and ctx.is_production:
            return warned(
                "strategy 'immediate' replaces every machine at once",
                Fix("Use rolling, canary or bluegreen", name, "[deploy]\n  strategy = 'rolling'"),
            )
        return passed(f"strategy = {strategy}")


@register
class FlyReleaseCommand(FlyCheck):
    """[deploy] release_command is set, is not a build (npm/pnpm/yarn/bun run build, next
    build, vite build) and looks like a migration."""

    id = "fly.release_command"
    title = "release_command runs migrations, not a build"
    category = Category.DELIVERY
    gate = Gate.CORE
    severity = Severity.HIGH
    remedy = "Build in the Dockerfile; run the migration (prisma migrate deploy, alembic upgrade head, ...) as release_command."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        command = (data.get("deploy") or {}).get("release_command")
        fix = Fix(
            "Build in the Dockerfile; run migrations as the release command",
            name,
            "[deploy]\n  release_command = 'npx prisma migrate deploy'",
        )
        if not command:
            return warned(
                "no release_command: how do migrations run before the new version serves?", fix
            )
        location = Location(name, line_of(text, r"release_command"))
        if BUILD_COMMAND.search(command):
            return failed(
                f"release_command {command!r} is a build: it runs in a temporary machine and its output is thrown away",
                fix,
                location=location,
            )
        if not MIGRATION.search(command):
            return warned(
                f"release_command {command!r} does not look like a migration",
                fix,
                location=location,
            )
        return passed(f"release_command = {command!r}")


@register
class FlyKill(FlyCheck):
    """kill_signal and kill_timeout are set and the timeout is at least 5 seconds."""

    id = "fly.kill"
    title = "kill_signal and kill_timeout give the app a graceful shutdown"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    remedy = "Set kill_signal = 'SIGTERM' and kill_timeout = '30s' so requests can drain."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        signal, timeout = data.get("kill_signal"), seconds(data.get("kill_timeout"))
        fix = Fix("Stop gracefully", name, "kill_signal = 'SIGTERM'\nkill_timeout = '30s'")
        if not signal or timeout is None:
            missing = [
                k for k, v in (("kill_signal", signal), ("kill_timeout", timeout)) if v is None
            ]
            return failed(f"{' and '.join(missing)} not set (Fly sends SIGINT and waits 5s)", fix)
        if timeout < 5:
            return failed(f"kill_timeout {timeout:g}s is too short to drain requests", fix)
        return passed(f"{signal}, {timeout:g}s")


@register
class FlyMetrics(FlyCheck):
    """fly.toml has a [metrics] section, so Fly scrapes the app's Prometheus metrics."""

    id = "fly.metrics"
    title = "[metrics] exposes the app's Prometheus metrics to Fly"
    category = Category.OBSERVABILITY
    gate = Gate.DEPLOY
    severity = Severity.LOW
    remedy = "Add [metrics] with the app's port and path = '/metrics'."

    def judge(self, ctx: CheckContext, name: str, text: str, data: dict[str, Any]) -> Outcome:
        metrics = data.get("metrics")
        if not metrics:
            return failed(
                "no [metrics] section",
                Fix(
                    "Let Fly scrape the app",
                    name,
                    f"[metrics]\n  port = {ctx.spec.service.port}\n  path = '/metrics'",
                ),
            )
        return passed("[metrics] set")
