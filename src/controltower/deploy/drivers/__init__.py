"""Deploy drivers: how releases are started, routed and stopped on a platform."""

from __future__ import annotations

from controltower.deploy.drivers.base import Driver, Instance, Probe, ReleaseInfo, TargetMetrics

__all__ = ["Driver", "Instance", "Probe", "ReleaseInfo", "TargetMetrics"]
