"""A tower.toml on the fly driver against the local Fly (tests/fakes/fly_api.py)."""

from __future__ import annotations

from pathlib import Path

from controltower.deploy import Engine
from controltower.deploy.drivers.factory import make_driver
from controltower.deploy.drivers.fly import FlyDriver
from controltower.spec import parse_spec
from controltower.store import Store
from tests.fakes.fly_api import FakeFly

TOKEN = "fo1_secret-token-value"

SPEC = """
[service]
name = "shop"
port = 3000

[health]
readiness = "/api/health"

[store]
url = "sqlite:///{db}"

[environments.production]
fly_app = "shop-prod"

[deploy]
driver = "fly"
strategy = "{strategy}"
instances = {instances}
max_unavailable = {batch}
drain_timeout = "1s"
warm_window = "10m"

[deploy.fly]
api_url = "{api}"
image = "registry.fly.io/shop:1"
wait_timeout = "20s"
propagation = "{propagation}"
critical_limit = 3
org = "personal"
{fly_extra}

[deploy.health]
consecutive = 2
deadline = "{deadline}"
interval = "300ms"

[deploy.analysis]
interval = "1s"
min_requests = 5
conditions = {conditions}

{steps}
"""

FLY_TOML = """
app = "shop-prod"
primary_region = "fra"
{deploy}
"""


def fake_fly(**options: object) -> FakeFly:
    """The fake with test timings: checks every 0.2 s; nothing unkind is switched off."""
    from tests.conftest import free_port

    settings: dict[str, object] = {"check_interval": 0.2, "propagation": 0.4}
    settings.update(options)
    fake = FakeFly(TOKEN, **settings)  # type: ignore[arg-type]
    fake.start(free_port())
    return fake


def write_site(
    root: Path,
    fly: FakeFly,
    *,
    strategy: str = "canary",
    instances: int = 2,
    batch: int = 1,
    deadline: str = "20s",
    steps: tuple[tuple[str, str], ...] = (("50%", "300ms"),),
    conditions: tuple[str, ...] = (),
    fly_extra: str = "",
    release_command: str = "",
) -> Path:
    step_text = "".join(f'[[deploy.steps]]\nweight = "{w}"\npause = "{p}"\n\n' for w, p in steps)
    deploy = f'[deploy]\nrelease_command = "{release_command}"\n' if release_command else ""
    (root / "fly.toml").write_text(FLY_TOML.format(deploy=deploy))
    spec_path = root / "tower.toml"
    spec_path.write_text(
        SPEC.format(
            strategy=strategy,
            db=root / "tower.db",
            instances=instances,
            batch=batch,
            api=fly.url,
            propagation=f"{fly.propagation + 0.2:g}s",
            deadline=deadline,
            conditions="[" + ", ".join(f'"{c}"' for c in conditions) + "]",
            steps=step_text,
            fly_extra=fly_extra + f'\nprometheus_url = "{fly.url}/prometheus/{fly.org}"',
        )
    )
    return spec_path


def engine_for(root: Path, fly: FakeFly, **options: object) -> tuple[Engine, FlyDriver]:
    spec_path = write_site(root, fly, **options)  # type: ignore[arg-type]
    spec = parse_spec(spec_path.read_text(), source=str(spec_path), env="production")
    driver = make_driver(spec, root=root, environ={"FLY_API_TOKEN": TOKEN})
    assert isinstance(driver, FlyDriver)
    store = Store.open(f"sqlite:///{root / 'tower.db'}")
    return Engine(spec, store, driver, root=root, actor="tester"), driver


def machines_of(fly: FakeFly, release: str, *, alive: bool = True) -> list[str]:
    return sorted(
        m.id
        for m in fly.machines.values()
        if (m.config.get("metadata") or {}).get("tower_release") == release
        and (not alive or not m.destroyed)
    )


def alive(fly: FakeFly) -> list[str]:
    return sorted(m.id for m in fly.machines.values() if not m.destroyed)
