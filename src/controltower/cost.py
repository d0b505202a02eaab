"""``tower cost``: what each environment costs a month, from VM sizes and machine counts.

The built-in table is Fly.io's resource pricing page (``PRICE_SOURCE``), read on
``PRICES_AS_OF``. Prices there are for 30 days of running, in Ashburn (``iad``)
and Secaucus (``ewr``), the lowest-priced regions; every other region is marked
up by the factor the page's region selector uses (``REGION_MARKUP``). A machine
costs ``cpus x cpu price`` (each shared CPU including 256 MB, each performance
CPU 2 GB) plus the RAM above that at the RAM price: the rule the page's
presets follow. Volumes, dedicated IPv4 addresses and outbound data are
priced as the page lists them (flat, and egress by region group). ``[cost]``
in tower.toml overrides any rate, the date, the region and whole presets; an
estimate from prices older than six months carries a warning.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from controltower.spec import Spec, load_spec
from controltower.units import format_size

PRICE_SOURCE = "https://fly.io/docs/about/pricing/"
PRICES_AS_OF = dt.date(2026, 12, 3)
STALE_AFTER = dt.timedelta(days=183)
SHARED_CPU_MONTH = 2.19  # shared-cpu-1x with 256 MB, 30 days, iad
PERFORMANCE_CPU_MONTH = 33.00  # performance-1x with 2 GB
RAM_GB_MONTH = 6.00  # "Additional Machine RAM"
VOLUME_GB_MONTH = 0.15  # provisioned capacity, attached or not
IPV4_MONTH = 2.00  # a dedicated IPv4 address (the shared one is free)
INCLUDED_MB = {"shared": 256, "performance": 2048}
HOURS_PER_MONTH = 720  # the page's month: 30 days of continuous running
BASE_REGION = "iad"
PUBLISHED = {
    "shared-cpu-1x:256mb": 2.19,
    "shared-cpu-1x:512mb": 3.69,
    "shared-cpu-1x:1gb": 6.70,
    "shared-cpu-2x:2gb": 13.39,
    "performance-1x:2gb": 33.00,
    "performance-2x:4gb": 66.00,
}
"""The page's own monthly figures for iad/ewr, as of ``PRICES_AS_OF``."""

REGION_MARKUP = {
    "ams": 1.038461538, "arn": 1.038461538, "bom": 1.076923077, "cdg": 1.134615385,
    "dfw": 1.25, "ewr": 1.0, "fra": 1.153846154, "gru": 1.615384615, "iad": 1.0,
    "jnb": 1.302884615, "lax": 1.199519231, "lhr": 1.134615385, "nrt": 1.307692308,
    "ord": 1.25, "sin": 1.269230769, "sjc": 1.192307692, "syd": 1.269230769,
    "yyz": 1.115384615,
}  # fmt: skip
"""Machine price of each region relative to iad, from the page's region selector."""

REGION_GROUP = {
    **dict.fromkeys(("iad", "ewr", "ord", "dfw", "lax", "sjc", "yyz"), "North America"),
    **dict.fromkeys(("ams", "arn", "cdg", "fra", "lhr"), "Europe"),
    **dict.fromkeys(("nrt", "sin"), "Asia Pacific"),
    "syd": "Oceania",
    "gru": "South America",
    "jnb": "Africa",
    "bom": "India",
}
EGRESS_GB = {
    "North America": 0.02, "Europe": 0.02, "Asia Pacific": 0.04, "Oceania": 0.04,
    "South America": 0.04, "Africa": 0.12, "India": 0.12,
}  # fmt: skip
"""Outbound data to the internet, per GB, by the region group it leaves from."""


def region_of(spec: Spec) -> str:
    return (
        spec.cost.region or spec.service.region or spec.deploy.fly.region or BASE_REGION
    ).lower()


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
    region: str = BASE_REGION
    source: str = PRICE_SOURCE
    ipv4_month: float = IPV4_MONTH
    egress_gb: float = 0.02
    notes: tuple[str, ...] = ()

    def warnings(self, today: dt.date) -> list[str]:
        """What the reader of an estimate must know: stale prices, a region not in the table."""
        out = list(self.notes)
        if today - self.as_of > STALE_AFTER:
            months = (today - self.as_of).days // 30
            out.append(
                f"prices are from {self.as_of.isoformat()}, {months} months ago: check "
                f"{self.source} and set [cost] rates and prices_as_of"
            )
        return out

    @classmethod
    def from_spec(cls, spec: Spec) -> PriceTable:
        cost = spec.cost

        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        region = region_of(spec)
        notes: list[str] = []
        if cost.region_multiplier is not None:
            multiplier = cost.region_multiplier
        elif region in REGION_MARKUP:
            multiplier = REGION_MARKUP[region]
        else:
            multiplier = 1.0
            notes.append(
                f"region {region} is not in the price table: priced as {BASE_REGION}; "
                "set [cost] region_multiplier"
            )
        group = REGION_GROUP.get(region, "North America")
        return cls(
            as_of=cost.prices_as_of or PRICES_AS_OF,
            currency=cost.currency,
            shared_cpu_month=pick(cost.shared_cpu_month, SHARED_CPU_MONTH),
            performance_cpu_month=pick(cost.performance_cpu_month, PERFORMANCE_CPU_MONTH),
            ram_gb_month=pick(cost.ram_gb_month, RAM_GB_MONTH),
            volume_gb_month=pick(cost.volume_gb_month, VOLUME_GB_MONTH),
            region_multiplier=multiplier,
            region=region,
            source=cost.source or PRICE_SOURCE,
            ipv4_month=pick(cost.ipv4_month, IPV4_MONTH),
            egress_gb=pick(cost.egress_gb_price, EGRESS_GB[group]),
            notes=tuple(notes),
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
            return key, price, f"published price of {self.as_of.isoformat()}, {self.region}"
        cpu_price = self.shared_cpu_month if cpu_kind == "shared" else self.performance_cpu_month
        extra_gb = max(0, memory_mb - INCLUDED_MB[cpu_kind] * cpus) / 1024
        price = (cpus * cpu_price + extra_gb * self.ram_gb_month) * self.region_multiplier
        return key, round(price, 2), f"price table of {self.as_of.isoformat()}, {self.region}"


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
        unit = round(size_gb * table.volume_gb_month, 4)
        result.lines.append(
            Line(
                f"volume {volume.name} ({format_size(volume.size)})",
                count,
                unit,
                round(count * unit, 2),
                f"price table of {table.as_of.isoformat()}",
            )
        )
    if spec.cost.dedicated_ipv4:
        count = spec.cost.dedicated_ipv4
        result.lines.append(
            Line(
                "dedicated IPv4",
                count,
                table.ipv4_month,
                round(count * table.ipv4_month, 2),
                f"price table of {table.as_of.isoformat()}",
            )
        )
    if spec.cost.egress_gb:
        gb = spec.cost.egress_gb
        result.lines.append(
            Line(
                f"outbound data ({gb:g} GB from {table.region})",
                gb,
                table.egress_gb,
                round(gb * table.egress_gb, 2),
                f"price table of {table.as_of.isoformat()}, {REGION_GROUP.get(table.region, 'North America')}",
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
