"""The whole of tower.toml as one validated model."""

from __future__ import annotations

from pydantic import Field

from controltower.spec.alerts import AlertsSpec
from controltower.spec.backup import BackupSpec
from controltower.spec.base import Section
from controltower.spec.budgets import BudgetsSpec
from controltower.spec.cost import CostSpec
from controltower.spec.deploy import DeploySpec
from controltower.spec.envcatalog import EnvCatalogSpec
from controltower.spec.environments import EnvironmentSpec
from controltower.spec.health import HealthSpec
from controltower.spec.monitors import MonitorSpec
from controltower.spec.security import SecuritySpec
from controltower.spec.server import ServerSpec
from controltower.spec.service import ServiceSpec
from controltower.spec.store import StoreSpec
from controltower.spec.waivers import WaiverSpec


class Spec(Section):
    """A loaded tower.toml. ``environment`` is the overlay that was applied, if any."""

    service: ServiceSpec
    environments: dict[str, EnvironmentSpec] = Field(default_factory=dict)
    health: HealthSpec = Field(default_factory=HealthSpec)
    env: EnvCatalogSpec = Field(default_factory=EnvCatalogSpec)
    budgets: BudgetsSpec = Field(default_factory=BudgetsSpec)
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    monitors: list[MonitorSpec] = Field(default_factory=list)
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    backup: BackupSpec = Field(default_factory=BackupSpec)
    cost: CostSpec = Field(default_factory=CostSpec)
    store: StoreSpec = Field(default_factory=StoreSpec)
    server: ServerSpec = Field(default_factory=ServerSpec)
    waivers: list[WaiverSpec] = Field(default_factory=list)

    environment: str | None = Field(default=None, exclude=True)
    source: str = Field(default="tower.toml", exclude=True)

    @property
    def url(self) -> str | None:
        """The URL of the chosen environment, if any."""
        if self.environment and self.environment in self.environments:
            return self.environments[self.environment].url
        return None

    @property
    def is_production(self) -> bool:
        if not self.environment:
            return False
        env = self.environments.get(self.environment)
        return env.is_production(self.environment) if env else self.environment == "production"


def _dependency_loop(start: str, depends: dict[str, list[str]]) -> list[str]:
    """The path from ``start`` back to itself through ``depends_on``, or [] if none."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        for nxt in depends.get(name, []):
            if nxt == start:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return []


def cross_check(spec: Spec) -> list[tuple[tuple[str | int, ...], str]]:
    """Checks that span sections: names that must exist, names that must be unique."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: set[str] = set()
    for index, monitor in enumerate(spec.monitors):
        if monitor.name in seen:
            problems.append(
                (("monitors", index, "name"), f'"{monitor.name}" is already the name of a monitor')
            )
        seen.add(monitor.name)
    for index, monitor in enumerate(spec.monitors):
        for dependency in monitor.depends_on:
            if dependency not in seen:
                problems.append(
                    (
                        ("monitors", index, "depends_on"),
                        f'"{dependency}" is not a monitor (monitors: {", ".join(sorted(seen)) or "none"})',
                    )
                )
    depends = {monitor.name: monitor.depends_on for monitor in spec.monitors}
    for index, monitor in enumerate(spec.monitors):
        loop = _dependency_loop(monitor.name, depends)
        if loop:
            problems.append(
                (
                    ("monitors", index, "depends_on"),
                    f"depends on itself through {' -> '.join(loop)} "
                    "(a monitor cannot wait for itself to be up)",
                )
            )
            break
    channels = set(spec.alerts.channels)
    defined = ", ".join(sorted(channels)) or "none"
    for index, route in enumerate(spec.alerts.routes):
        for key, names in (("channels", route.channels), ("escalate_to", route.escalate_to)):
            for channel in names:
                if channel not in channels:
                    problems.append(
                        (
                            ("alerts", "routes", index, key),
                            f'"{channel}" is not a channel in [alerts.channels] (defined: {defined})',
                        )
                    )
    for channel in spec.alerts.default_channels:
        if channel not in channels:
            problems.append(
                (
                    ("alerts", "default_channels"),
                    f'"{channel}" is not a channel in [alerts.channels] (defined: {defined})',
                )
            )
    problems.extend(fly_guest_problems(spec))
    problems.extend(vercel_problems(spec))
    scenarios = sorted(s.name for s in spec.budgets.scenarios)
    for name in spec.deploy.analysis.traffic:
        if name not in scenarios:
            problems.append(
                (
                    ("deploy", "analysis", "traffic"),
                    f'"{name}" is not a [[budgets.scenarios]] name '
                    f"(scenarios: {', '.join(scenarios) or 'none'})",
                )
            )
    heartbeat = spec.backup.heartbeat
    if heartbeat and not heartbeat.startswith(("http://", "https://")):
        pushed = sorted(m.name for m in spec.monitors if m.type.value == "heartbeat")
        if heartbeat not in pushed:
            problems.append(
                (
                    ("backup", "heartbeat"),
                    f'"{heartbeat}" is not a heartbeat monitor '
                    f"(heartbeat monitors: {', '.join(pushed) or 'none'})",
                )
            )
    return problems


FLY_CPUS = {"shared": (1, 2, 4, 8), "performance": (1, 2, 4, 8, 16)}
FLY_MEMORY_PER_CPU = {"shared": (256, 2048), "performance": (2048, 8192)}


def fly_guest_problems(spec: Spec) -> list[tuple[tuple[str | int, ...], str]]:
    """Guest sizes the Fly Machines API refuses, refused here instead (fly-go MachineGuest)."""
    if spec.deploy.driver.value != "fly":
        return []
    service = spec.service
    kind = service.cpu_kind.value
    memory = service.memory / (1024 * 1024)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if service.cpus not in FLY_CPUS[kind]:
        allowed = ", ".join(str(n) for n in FLY_CPUS[kind])
        problems.append(
            (("service", "cpus"), f"Fly has no {kind} machine with {service.cpus} CPUs ({allowed})")
        )
    if memory != int(memory) or int(memory) % 256:
        problems.append(
            (
                ("service", "memory"),
                f"Fly sizes memory in steps of 256 MB; {memory:g} MB is not one "
                f"(try {max(256, round(memory / 256) * 256)}mb)",
            )
        )
        return problems
    low, high = (n * service.cpus for n in FLY_MEMORY_PER_CPU[kind])
    if not low <= memory <= high:
        per = "GB" if kind == "performance" else "MB"
        low_shown = f"{low // 1024} GB" if per == "GB" else f"{low} MB"
        problems.append(
            (
                ("service", "memory"),
                f"{service.cpus} {kind} CPU(s) take {low_shown} to {high // 1024} GB on Fly; "
                f"{int(memory)} MB is outside that"
                + (" (performance CPUs need at least 2 GB each)" if kind == "performance" else ""),
            )
        )
    return problems


def vercel_problems(spec: Spec) -> list[tuple[tuple[str | int, ...], str]]:
    """What the vercel driver would refuse at deploy time, refused here instead."""
    if spec.deploy.driver.value != "vercel":
        return []
    vercel = spec.deploy.vercel
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if not vercel.project:
        problems.append(
            (
                ("deploy", "driver"),
                "the vercel driver needs [deploy.vercel] project "
                "(the project id or name, as in .vercel/project.json)",
            )
        )
    if vercel.source == "git" and not vercel.git_repo_id:
        problems.append(
            (
                ("deploy", "vercel", "source"),
                'source = "git" needs git_repo_id (the repository id Vercel knows it by); '
                'or deploy what `vercel build` wrote with source = "prebuilt"',
            )
        )
    if "{url}" not in vercel.deployment_url:
        problems.append(
            (("deploy", "vercel", "deployment_url"), "deployment_url must contain {url}")
        )
    last = 0.0
    for index, step in enumerate(spec.deploy.steps):
        if step.weight <= last:
            problems.append(
                (
                    ("deploy", "steps", index, "weight"),
                    "Vercel rolling-release stages must each send more traffic than the last "
                    f"({step.weight:.0%} after {last:.0%})",
                )
            )
        last = step.weight
    return problems
