from __future__ import annotations

import datetime as dt

from pydantic import Field

from controltower.spec.base import Section
from controltower.units import Size


class VolumeCostSpec(Section):
    """``[[cost.volumes]]``: a volume attached to each machine (or ``count`` of them)."""

    name: str = "data"
    size: Size
    count: int | None = Field(default=None, ge=0)


class CostSpec(Section):
    """``[cost]``: the price table used by ``tower cost``, dated, every figure overridable.

    Left empty, tower uses its built-in table (Fly.io's pricing page, dated, per
    region; see docs/generate.md). ``region`` defaults to ``[service] region``;
    ``region_multiplier`` overrides the table's markup for it. ``dedicated_ipv4``
    counts dedicated addresses; ``egress_gb`` is the outbound data expected a month.
    ``machines`` overrides the monthly price of a preset, keyed like
    ``"shared-cpu-1x:512mb"``.
    """

    prices_as_of: dt.date | None = None
    source: str = ""
    currency: str = "USD"
    region: str = ""
    region_multiplier: float | None = Field(default=None, gt=0)
    shared_cpu_month: float | None = Field(default=None, ge=0)
    performance_cpu_month: float | None = Field(default=None, ge=0)
    ram_gb_month: float | None = Field(default=None, ge=0)
    volume_gb_month: float | None = Field(default=None, ge=0)
    ipv4_month: float | None = Field(default=None, ge=0)
    egress_gb_price: float | None = Field(default=None, ge=0)
    dedicated_ipv4: int = Field(default=0, ge=0)
    egress_gb: float = Field(default=0, ge=0)
    machines: dict[str, float] = Field(default_factory=dict)
    volumes: list[VolumeCostSpec] = Field(default_factory=list)
    extra: dict[str, float] = Field(default_factory=dict)
