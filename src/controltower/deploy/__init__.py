"""Progressive deploys with automatic rollback: engine, strategies, analysis and drivers."""

from __future__ import annotations

from pathlib import Path

from controltower.deploy.drivers.base import Driver, Instance, Probe, ReleaseInfo, TargetMetrics
from controltower.deploy.drivers.factory import make_driver
from controltower.deploy.engine import Engine, GateFailed, ReleaseView
from controltower.deploy.history import Dora, dora
from controltower.deploy.strategies import Step, build_plan
from controltower.spec import Spec
from controltower.store import Store

__all__ = [
    "Dora",
    "Driver",
    "Engine",
    "GateFailed",
    "Instance",
    "Probe",
    "ReleaseInfo",
    "ReleaseView",
    "Step",
    "TargetMetrics",
    "build_plan",
    "dora",
    "make_driver",
    "open_engine",
    "spec_root",
]


def spec_root(spec: Spec) -> Path:
    """The directory tower.toml is in: relative paths in the spec start there."""
    return Path(spec.source).resolve().parent


def open_engine(spec: Spec, *, store: Store | None = None, **options: object) -> Engine:
    """An engine for ``spec`` with its driver and store (the spec's or the default)."""
    root = spec_root(spec)
    if store is None:
        url = spec.store.url.get_secret_value() if spec.store.url else None
        store = Store.open(url, root=root)
    driver = make_driver(spec, root=root)
    return Engine(spec, store, driver, root=root, **options)  # type: ignore[arg-type]
