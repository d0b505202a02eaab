"""Pick the driver ``[deploy] driver`` names."""

from __future__ import annotations

import os
from pathlib import Path

from controltower.deploy.drivers.base import Driver
from controltower.spec import Spec
from controltower.spec.deploy import DriverName


def make_driver(spec: Spec, *, root: Path, environ: dict[str, str] | None = None) -> Driver:
    env = dict(os.environ if environ is None else environ)
    name = spec.deploy.driver
    if name is DriverName.LOCAL:
        from controltower.deploy.drivers.local import LocalDriver

        return LocalDriver(
            spec.deploy.local,
            root=root,
            service=spec.service.name,
            health_path=spec.health.readiness,
        )
    if name is DriverName.FLY:
        from controltower.deploy.drivers.fly import FlyDriver

        return FlyDriver.from_spec(spec, environ=env, root=root)
    if name is DriverName.VERCEL:
        from controltower.deploy.drivers.vercel import VercelDriver

        return VercelDriver.from_spec(spec, environ=env, root=root)
    from controltower.deploy.drivers.exec import ExecDriver

    return ExecDriver(spec.deploy.exec, root=root, url=spec.url, service=spec.service.name)
