"""``tower cost``: what each environment costs a month, from VM sizes and machine counts.

The built-in table is Fly.io's documented usage pricing (``PRICES_AS_OF``,
US regions), per machine running the whole month: the published price of each
preset, and for other sizes ``cpus x cpu price`` (each shared CPU includes
256 MB, each performance CPU 2 GB) plus the RAM above that at the RAM price,
the rule the published table follows. ``[cost]`` in tower.toml overrides any
rate, the date, a region multiplier, and whole presets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from controltower.spec import Spec, load_spec
from controltower.units import format_size

PRICES_AS_OF = dt.date(2024, 10, 1)
SHARED_CPU_MONTH = 1.94
PERFORMANCE_CPU_MONTH = 31.00
RAM_GB_MONTH = 5.00
VOLUME_GB_MONTH = 0.15
INCLUDED_MB = {"shared": 256, "performance": 2048}
HOURS_PER_MONTH = 730
PUBLISHED = {
    "shared-cpu-1x:256mb": 1.94,
    "shared-cpu-1x:512mb": 3.19,
    "shared-cpu-1x:1gb": 5.70,
    "shared-cpu-1x:2gb": 10.70,
    "shared-cpu-2x:512mb": 3.89,
    "shared-cpu-2x:1gb": 6.39,
    "shared-cpu-2x:2gb": 11.39,
    "shared-cpu-2x:4gb": 21.40,
    "shared-cpu-4x:1gb": 7.78,
    "shared-cpu-4x:2gb": 12.78,
    "shared-cpu-4x:4gb": 22.78,
    "shared-cpu-4x:8gb": 42.79,
    "shared-cpu-8x:2gb": 15.55,
    "shared-cpu-8x:4gb": 25.55,
    "shared-cpu-8x:8gb": 45.56,
    "shared-cpu-8x:16gb": 85.58,
    "performance-1x:2gb": 31.00,
    "performance-1x:4gb": 41.00,
    "performance-1x:8gb": 61.00,
    "performance-2x:4gb": 62.00,
    "performance-2x:8gb": 82.00,
    "performance-2x:16gb": 122.00,
    "performance-4x:8gb": 124.00,
    "performance-4x:16gb": 164.00,
    "performance-4x:32gb": 244.00,
    "performance-8x:16gb": 248.00,
    "performance-8x:32gb": 328.00,
    "performance-8x:64gb": 488.00,
    "performance-16x:32gb": 496.00,
    "performance-16x:64gb": 656.00,
    "performance-16x:128gb": 976.00,
}
"""Fly's published monthly prices of its presets (US regions), as of ``PRICES_AS_OF``."""


@dataclass(frozen=True)
class PriceTable:
    as_of: dt.date
    currency: str
    shared_cpu_month: float
    performance_cpu_month: float
    ram_gb_month: float
    volume_gb_month: float
    region_multiplier: float
    machines: dict[str, float]
    custom_rates: bool = False

    @classmethod
    def from_spec(cls, spec: Spec) -> PriceTable:
        cost = spec.cost

        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        return cls(
            as_of=cost.prices_as_of or PRICES_AS_OF,
            currency=cost.currency,
            shared_cpu_month=pick(cost.shared_cpu_month, SHARED_CPU_MONTH),
            performance_cpu_month=pick(cost.performance_cpu_month, PERFORMANCE_CPU_MONTH),
            ram_gb_month=pick(cost.ram_gb_month, RAM_GB_MONTH),
            volume_gb_month=pick(cost.volume_gb_month, VOLUME_GB_MONTH),
            region_multiplier=cost.region_multiplier,
            machines={k.lower(): v for k, v in cost.machines.items()},
            custom_rates=any(
                value is not None
                for value in (cost.shared_cpu_month, cost.performance_cpu_month, cost.ram_gb_month)
            ),
        )

    def machine(self, cpu_kind: str, cpus: int, memory_mb: int) -> tuple[str, float, str]:
        """The preset name, its monthly price, and where the price came from."""
        preset = f"{cpu_kind}-cpu-{cpus}x" if cpu_kind == "shared" else f"performance-{cpus}x"
        key = f"{preset}:{format_size(memory_mb * 1024 * 1024)}"
        if key in self.machines:
            return key, self.machines[key], "tower.toml [cost.machines]"
        if key in PUBLISHED and not self.custom_rates:
            price = round(PUBLISHED[key] * self.region_multiplier, 2)
            return key, price, f"published price of {self.as_of.isoformat()}"
        cpu_price = self.shared_cpu_month if cpu_kind == "shared" else self.performance_cpu_month
        extra_gb = max(0, memory_mb - INCLUDED_MB[cpu_kind] * cpus) / 1024
        price = (cpus * cpu_price + extra_gb * self.ram_gb_month) * self.region_multiplier
        return key, round(price, 2), f"price table of {self.as_of.isoformat()}"


@dataclass
class Line:
    item: str
    quantity: float
    unit_price: float
    monthly: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class EnvironmentCost:
    environment: str
    machines: int
    preset: str
    lines: list[Line] = field(default_factory=list)

    @property
    def monthly(self) -> float:
        return round(sum(line.monthly for line in self.lines), 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "machines": self.machines,
            "preset": self.preset,
            "monthly": self.monthly,
            "lines": [line.to_dict() for line in self.lines],
        }


def estimate(spec: Spec, environment: str) -> EnvironmentCost:
    """The monthly cost of ``spec`` (already overlaid with ``environment``)."""
    table = PriceTable.from_spec(spec)
    service = spec.service
    memory_mb = service.memory // (1024 * 1024)
    machines = spec.deploy.instances
    preset, price, source = table.machine(service.cpu_kind.value, service.cpus, memory_mb)
    result = EnvironmentCost(environment, machines, preset)
    result.lines.append(
        Line(f"machines ({preset})", machines, price, round(machines * price, 2), source)
    )
    for volume in spec.cost.volumes:
        count = machines if volume.count is None else volume.count
        size_gb = volume.size / 1024**3
        unit = round(size_gb * table.volume_gb_month * table.region_multiplier, 4)
        result.lines.append(
            Line(
                f"volume {volume.name} ({format_size(volume.size)})",
                count,
                unit,
                round(count * unit, 2),
                f"price table of {table.as_of.isoformat()}",
            )
        )
    for name, monthly in sorted(spec.cost.extra.items()):
        result.lines.append(Line(name, 1, monthly, round(monthly, 2), "tower.toml [cost.extra]"))
    return result


def estimate_all(spec_path: str, environments: list[str] | None = None) -> list[EnvironmentCost]:
    """One estimate per environment of the spec (the base spec when it defines none)."""
    base = load_spec(spec_path)
    names = environments or list(base.environments) or []
    if not names:
        return [estimate(base, "default")]
    out = []
    for name in names:
        out.append(estimate(load_spec(spec_path, env=name), name))
    return out
