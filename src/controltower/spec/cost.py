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

    Left empty, tower uses its built-in table (Fly.io's documented usage prices,
    see docs/generate.md). ``machines`` overrides the monthly price of a preset,
    keyed like ``"shared-cpu-1x:512mb"``.
    """

    prices_as_of: dt.date | None = None
    currency: str = "USD"
    region_multiplier: float = Field(default=1.0, gt=0)
    shared_cpu_month: float | None = Field(default=None, ge=0)
    performance_cpu_month: float | None = Field(default=None, ge=0)
    ram_gb_month: float | None = Field(default=None, ge=0)
    volume_gb_month: float | None = Field(default=None, ge=0)
    machines: dict[str, float] = Field(default_factory=dict)
    volumes: list[VolumeCostSpec] = Field(default_factory=list)
    extra: dict[str, float] = Field(default_factory=dict)
