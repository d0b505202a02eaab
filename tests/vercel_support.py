"""A tower.toml on the vercel driver against the local Vercel (tests/fakes/vercel_api.py)."""

from __future__ import annotations

from pathlib import Path

from controltower.deploy import Engine
from controltower.deploy.drivers.factory import make_driver
from controltower.deploy.drivers.vercel import VercelDriver
from controltower.spec import parse_spec
from controltower.store import Store
from tests.fakes.vercel_api import FakeVercel

TOKEN = "vcp_secret-token-value"
BYPASS = "bypass-secret-value"
ENVIRON = {"VERCEL_TOKEN": TOKEN, "VERCEL_AUTOMATION_BYPASS_SECRET": BYPASS}

SPEC = """
[service]
name = "shop"
target = "vercel"

[health]
readiness = "/api/health"

[store]
url = "sqlite:///{db}"

[environments.production]
url = "{url}/_fake/production"

[deploy]
driver = "vercel"
strategy = "{strategy}"
instances = 1

[deploy.vercel]
project = "shop"
team_id = "{team}"
api_url = "{url}"
source = "git"
git_repo_id = "123456"
deployment_url = "{url}/_fake/site/{{url}}"
build_timeout = "20s"
promote_timeout = "10s"
poll = "100ms"

[deploy.health]
consecutive = 2
deadline = "10s"
interval = "100ms"

[deploy.analysis]
interval = "{interval}"
min_requests = 0
conditions = {conditions}

[[deploy.smoke]]
path = "/api/health"
conditions = ["status == 200"]

{steps}
"""


def fake_vercel(**options: object) -> FakeVercel:
    from tests.conftest import free_port

    fake = FakeVercel(TOKEN, bypass=BYPASS, **options)  # type: ignore[arg-type]
    fake.start(free_port())
    return fake


def write_site(
    root: Path,
    vercel: FakeVercel,
    *,
    strategy: str = "canary",
    steps: tuple[tuple[str, str], ...] = (("25%", "400ms"), ("50%", "400ms")),
    conditions: tuple[str, ...] = (),
    interval: str = "400ms",
) -> Path:
    step_text = "".join(f'[[deploy.steps]]\nweight = "{w}"\npause = "{p}"\n\n' for w, p in steps)
    spec_path = root / "tower.toml"
    spec_path.write_text(
        SPEC.format(
            url=vercel.url,
            db=root / "tower.db",
            team=vercel.team,
            strategy=strategy,
            interval=interval,
            conditions="[" + ", ".join(f'"{c}"' for c in conditions) + "]",
            steps=step_text,
        )
    )
    return spec_path


def engine_for(root: Path, vercel: FakeVercel, **options: object) -> tuple[Engine, VercelDriver]:
    spec_path = write_site(root, vercel, **options)  # type: ignore[arg-type]
    spec = parse_spec(spec_path.read_text(), source=str(spec_path), env="production")
    driver = make_driver(spec, root=root, environ=ENVIRON)
    assert isinstance(driver, VercelDriver)
    store = Store.open(f"sqlite:///{root / 'tower.db'}")
    return Engine(spec, store, driver, root=root, actor="tester"), driver
