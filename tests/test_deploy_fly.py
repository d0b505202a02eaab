"""The fly driver against a local server implementing the documented Fly Machines API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controltower.deploy import Engine
from controltower.deploy.drivers.base import ReleaseInfo
from controltower.deploy.drivers.factory import make_driver
from controltower.deploy.drivers.fly import FlyAPI, FlyDriver, machine_config, split
from controltower.exceptions import DriverError
from controltower.spec import parse_spec
from controltower.spec.deploy import FlyDriverSpec, Strategy
from controltower.store import Store
from tests.conftest import free_port
from tests.fakes.fly_api import FakeFly

TOKEN = "fo1_secret-token-value"

SPEC = """
[service]
name = "shop"
port = 3000

[environments.production]
fly_app = "shop-prod"

[deploy]
driver = "fly"
strategy = "{strategy}"
instances = 2
drain_timeout = "1s"

[deploy.fly]
api_url = "{api}"
image = "registry.fly.io/shop:1"
wait_timeout = "10s"

[deploy.health]
consecutive = 2
deadline = "{deadline}"
interval = "100ms"

[[deploy.steps]]
weight = "50%"
pause = "200ms"
"""


@pytest.fixture
def fly() -> Iterator[FakeFly]:
    fake = FakeFly(TOKEN, start_delay=0.2, check_delay=0.2)
    fake.start(free_port())
    yield fake
    fake.stop()


def engine_for(
    fly: FakeFly, tmp_path: Path, strategy: str = "canary", deadline: str = "5s"
) -> tuple[Engine, FlyDriver]:
    spec = parse_spec(
        SPEC.format(strategy=strategy, api=f"http://127.0.0.1:{fly.port}", deadline=deadline),
        source=str(tmp_path / "tower.toml"),
        env="production",
    )
    driver = make_driver(spec, root=tmp_path, environ={"FLY_API_TOKEN": TOKEN})
    assert isinstance(driver, FlyDriver)
    store = Store.open(f"sqlite:///{tmp_path / 'tower.db'}")
    return Engine(spec, store, driver, root=tmp_path, actor="tester"), driver


def registered(fly: FakeFly) -> set[str]:
    return set(httpx.get(f"http://127.0.0.1:{fly.port}/_fake/registered").json())


def machines_of(fly: FakeFly, release: str, *, alive: bool = True) -> list[str]:
    return [
        m.id
        for m in fly.machines.values()
        if m.config["metadata"]["tower_release"] == release and (not alive or not m.destroyed)
    ]


class TestBuilders:
    def test_machine_config(self) -> None:
        """A release's machine config: image, env, metadata, services and the readiness check."""
        config = machine_config(
            FlyDriverSpec(app="shop", image="registry.fly.io/shop:base"),
            ReleaseInfo("r1", "1.2.0", image="registry.fly.io/shop:abc", env={"A": "1"}),
            port=3000,
            readiness="/api/health",
            cpus=2,
            memory_mb=1024,
            cpu_kind="performance",
        )
        assert config == {
            "image": "registry.fly.io/shop:abc",
            "env": {"A": "1"},
            "guest": {"cpu_kind": "performance", "cpus": 2, "memory_mb": 1024},
            "metadata": {"tower_release": "r1", "tower_version": "1.2.0"},
            "services": [
                {
                    "protocol": "tcp",
                    "internal_port": 3000,
                    "ports": [
                        {"port": 80, "handlers": ["http"], "force_https": True},
                        {"port": 443, "handlers": ["tls", "http"]},
                    ],
                }
            ],
            "checks": {
                "ready": {
                    "type": "http",
                    "port": 3000,
                    "method": "GET",
                    "path": "/api/health",
                    "interval": "5s",
                    "timeout": "2s",
                }
            },
            "restart": {"policy": "on-failure"},
        }

    @pytest.mark.parametrize(
        ("weight", "new", "old", "expected"),
        [
            (1.0, 2, 2, (2, 0)),
            (0.5, 2, 2, (1, 1)),
            (0.25, 2, 3, (1, 3)),
            (0.1, 1, 4, (1, 4)),
            (0.0, 2, 2, (0, 2)),
            (0.5, 2, 0, (2, 0)),
        ],
    )
    def test_weight_becomes_machine_counts(
        self, weight: float, new: int, old: int, expected: tuple[int, int]
    ) -> None:
        """Fly balances over registered machines, so a weight is the closest count ratio."""
        assert split(weight, new, old) == expected


class TestFromSpec:
    def test_missing_token_names_the_variable(self, tmp_path: Path) -> None:
        """Without the token variable the driver says which to export and how to make one."""
        spec = parse_spec(
            '[service]\nname = "shop"\n[deploy]\ndriver = "fly"\n[deploy.fly]\napp = "shop"\n',
            source=str(tmp_path / "tower.toml"),
        )
        with pytest.raises(DriverError, match=r"\$FLY_API_TOKEN is not set") as caught:
            make_driver(spec, root=tmp_path, environ={})
        assert "fly tokens create deploy -a shop" in str(caught.value.hint)

    def test_app_from_the_environment(self, fly: FakeFly, tmp_path: Path) -> None:
        """The app defaults to environments.<env>.fly_app; the token is sent, never kept in text."""
        _, driver = engine_for(fly, tmp_path)
        assert driver.spec.app == "shop-prod"
        assert TOKEN not in repr(driver.spec) and TOKEN not in str(vars(driver))


class TestAPI:
    def test_bad_token_is_explained(self, fly: FakeFly) -> None:
        """A 401 names the token variable to check and does not echo the token."""
        api = FlyAPI(f"http://127.0.0.1:{fly.port}", "wrong", "shop")
        with pytest.raises(DriverError, match="401") as caught:
            api.list()
        assert caught.value.hint == "check the token in $FLY_API_TOKEN"
        assert "wrong" not in str(caught.value)

    def test_leases_guard_changes(self, fly: FakeFly) -> None:
        """A leased machine refuses changes without the nonce and takes them with it."""
        api = FlyAPI(f"http://127.0.0.1:{fly.port}", TOKEN, "shop")
        machine = api.create({"config": {"image": "img:1"}, "skip_service_registration": True})
        nonce = api.acquire_lease(machine["id"], 30, "test")
        with pytest.raises(DriverError, match="409"):
            api.cordon(machine["id"])
        api.uncordon(machine["id"], nonce)
        api.release_lease(machine["id"], nonce)
        api.cordon(machine["id"])
        assert [c[2] for c in fly.changes] == [False, True, False]

    def test_update_reboots_with_a_new_instance(self, fly: FakeFly) -> None:
        """Update takes the whole config under the lease; the machine comes back as a new instance."""
        api = FlyAPI(f"http://127.0.0.1:{fly.port}", TOKEN, "shop")
        machine = api.create({"config": {"image": "img:1"}})
        api.wait(machine["id"], "started", 5)
        nonce = api.acquire_lease(machine["id"], 30)
        updated = api.update(machine["id"], {"config": {"image": "img:2"}}, nonce)
        assert updated["instance_id"] != machine["instance_id"]
        assert updated["config"]["image"] == "img:2"
        assert updated["state"] in ("created", "starting")
        api.wait(machine["id"], "started", 5, updated["instance_id"])

    def test_wait_outlasts_the_per_call_limit(self, tmp_path: Path) -> None:
        """The API waits at most so long per call; the client asks again until its own deadline."""
        fake = FakeFly(TOKEN, start_delay=2.0, max_wait=1.0)
        fake.start(free_port())
        try:
            api = FlyAPI(f"http://127.0.0.1:{fake.port}", TOKEN, "shop")
            machine = api.create({"config": {"image": "img:1"}})
            api.wait(machine["id"], "started", 10)
            assert fake.view(fake.machines[machine["id"]])["state"] == "started"
            waits = [p for m, p in fake.requests if p.endswith("/wait")]
            assert len(waits) >= 2
            other = api.create({"config": {"image": "img:1"}})
            with pytest.raises(DriverError, match="did not reach started within 1s"):
                api.wait(other["id"], "started", 1)
        finally:
            fake.stop()


class TestDeploysOnFly:
    def test_first_deploy_registers_only_after_checks(self, fly: FakeFly, tmp_path: Path) -> None:
        """Machines are created outside the proxy, waited on, gated on their checks, then uncordoned."""
        engine, _ = engine_for(fly, tmp_path)
        release = engine.deploy(version="1.0")
        assert release.status == "succeeded", release.reason
        created = [
            b for m, p, b in fly.bodies if m == "POST" and p == "/v1/apps/shop-prod/machines"
        ]
        assert len(created) == 2
        assert all(b["skip_service_registration"] is True for b in created)
        assert all(b["config"]["image"] == "registry.fly.io/shop:1" for b in created)
        assert registered(fly) == set(machines_of(fly, release.id))
        assert all(with_nonce for _, _, with_nonce in fly.changes), "every change held the lease"
        log = [s.message for s in engine.show(release.id).steps]
        assert any("passed readiness" in m for m in log)

    def test_canary_moves_machines_and_destroys_the_old(self, fly: FakeFly, tmp_path: Path) -> None:
        """A canary registers new machines step by step, logs the effective split, destroys the old."""
        engine, _ = engine_for(fly, tmp_path)
        first = engine.deploy(version="1.0")
        second = engine.deploy(version="2.0", image="registry.fly.io/shop:2")
        assert second.status == "succeeded", second.reason
        routes = [s for s in engine.show(second.id).steps if s.state == "route"]
        assert routes[0].detail["effective"] == {second.id: 0.5, first.id: 0.5}
        assert registered(fly) == set(machines_of(fly, second.id))
        assert machines_of(fly, first.id) == []
        stopped = [p for m, p, b in fly.bodies if p.endswith("/stop")]
        assert len(stopped) == 2
        assert all(b == {"timeout": "1s"} for m, p, b in fly.bodies if p.endswith("/stop"))
        images = {m.config["image"] for m in fly.machines.values() if not m.destroyed}
        assert images == {"registry.fly.io/shop:2"}

    def test_failing_checks_never_registered(self, fly: FakeFly, tmp_path: Path) -> None:
        """A release whose Fly checks stay critical is destroyed without ever being registered."""
        engine, _ = engine_for(fly, tmp_path, deadline="2s")
        first = engine.deploy(version="1.0")
        bad = engine.deploy(version="2.0", image="registry.fly.io/shop:bad")
        assert bad.status == "rolled_back"
        assert "Fly checks: ready critical" in bad.reason
        new = [
            m.id for m in fly.machines.values() if m.config["metadata"]["tower_release"] == bad.id
        ]
        assert new and not (set(new) & fly.ever_registered)
        assert machines_of(fly, bad.id) == []
        assert registered(fly) == set(machines_of(fly, first.id))

    def test_bluegreen_rollback_reuses_warm_machines(self, fly: FakeFly, tmp_path: Path) -> None:
        """After blue-green the old machines stay (cordoned); `tower rollback` uncordons them."""
        engine, _ = engine_for(fly, tmp_path, strategy="bluegreen")
        blue = engine.deploy(version="1.0")
        green = engine.deploy(version="2.0", strategy=Strategy.BLUEGREEN)
        assert green.status == "succeeded", green.reason
        assert registered(fly) == set(machines_of(fly, green.id))
        assert len(machines_of(fly, blue.id)) == 2
        creates = len([1 for m, p, _ in fly.bodies if p == "/v1/apps/shop-prod/machines"])
        back = engine.rollback()
        assert back.status == "succeeded", back.reason
        assert len([1 for m, p, _ in fly.bodies if p == "/v1/apps/shop-prod/machines"]) == creates
        assert registered(fly) == set(machines_of(fly, blue.id))
        assert machines_of(fly, green.id) == []

    def test_lease_held_by_someone_else_fails_and_rolls_back(
        self, fly: FakeFly, tmp_path: Path
    ) -> None:
        """Another tool holding an old machine's lease stops the switch; the deploy is undone."""
        engine, _ = engine_for(fly, tmp_path, strategy="immediate")
        first = engine.deploy(version="1.0")
        victim = machines_of(fly, first.id)[0]
        httpx.post(
            f"http://127.0.0.1:{fly.port}/v1/apps/shop-prod/machines/{victim}/lease",
            json={"ttl": 60},
            headers={"authorization": f"Bearer {TOKEN}", "x-fake-owner": "flyctl@laptop"},
        )
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back", second.reason
        assert "is leased by flyctl@laptop until" in second.reason
        assert registered(fly) == set(machines_of(fly, first.id))
        assert machines_of(fly, second.id) == []
