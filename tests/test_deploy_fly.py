"""The fly driver against a local Fly built from Fly's documentation (tests/fakes/fly_api.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controltower.deploy.drivers.base import Instance, ReleaseInfo
from controltower.deploy.drivers.factory import make_driver
from controltower.deploy.drivers.fly import (
    FlyAPI,
    canary_count,
    clone_config,
    fresh_config,
    retry_after,
)
from controltower.exceptions import DriverError, TowerError
from controltower.spec import parse_spec
from controltower.spec.deploy import Strategy
from tests.fakes.fly_api import FakeFly, _flyctl_config
from tests.fakes.server import FakeServer, Request, Response
from tests.fly_support import TOKEN, alive, engine_for, fake_fly, machines_of


@pytest.fixture
def fly() -> Iterator[FakeFly]:
    fake = fake_fly()
    yield fake
    fake.stop()


def routed_to(fly: FakeFly, ids: list[str]) -> int:
    wanted = set(ids)
    return sum(1 for r in fly.routed if r.machine in wanted)


def healthy_during(fly: FakeFly, start: float, end: float) -> list[int]:
    """Registered healthy machines at ``start`` and at every change until ``end``."""
    before = [s.healthy for s in fly.samples if s.at < start][-1:]
    return before + [s.healthy for s in fly.samples if start <= s.at <= end]


class TestBuilders:
    def test_fresh_config(self) -> None:
        """A first machine on an empty app: process group metadata and a service check."""
        config = fresh_config(
            ReleaseInfo("r1", "1.2.0", env={"A": "1"}),
            image="registry.fly.io/shop:abc",
            group="app",
            port=3000,
            readiness="/api/health",
            cpus=2,
            memory_mb=4096,
            cpu_kind="performance",
        )
        assert config == {
            "image": "registry.fly.io/shop:abc",
            "env": {"A": "1"},
            "guest": {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096},
            "metadata": {
                "fly_process_group": "app",
                "fly_platform_version": "v2",
                "tower_release": "r1",
                "tower_version": "1.2.0",
            },
            "services": [
                {
                    "protocol": "tcp",
                    "internal_port": 3000,
                    "ports": [
                        {"port": 80, "handlers": ["http"], "force_https": True},
                        {"port": 443, "handlers": ["tls", "http"]},
                    ],
                    "checks": [
                        {
                            "type": "http",
                            "interval": "10s",
                            "timeout": "2s",
                            "grace_period": "5s",
                            "method": "GET",
                            "path": "/api/health",
                        }
                    ],
                }
            ],
            "restart": {"policy": "on-failure"},
        }

    def test_clone_changes_only_image_env_and_tower_metadata(self) -> None:
        """A clone keeps every field of the running config; image, env and tower keys change."""
        running = _flyctl_config("registry.fly.io/shop:old", "app", 3000)
        running["mounts"] = [{"volume": "vol_1", "path": "/data", "name": "data", "size_gb": 3}]
        clone = clone_config(running, ReleaseInfo("r2", "2.0", env={"B": "2"}), "img:new")
        assert clone["image"] == "img:new"
        assert clone["env"] == {**running["env"], "B": "2"}
        assert clone["metadata"] == {
            **running["metadata"],
            "tower_release": "r2",
            "tower_version": "2.0",
        }
        for key in set(running) - {"image", "env", "metadata"}:
            assert clone[key] == running[key], key
        assert running["image"] == "registry.fly.io/shop:old", "the template is not changed"

    @pytest.mark.parametrize(
        ("weight", "new", "old", "expected"),
        [
            (1.0, 10, 10, 10),
            (0.05, 10, 10, 1),
            (0.25, 10, 10, 3),
            (0.5, 10, 10, 10),
            (0.5, 2, 2, 2),
            (0.1, 1, 4, 1),
            (0.0, 2, 2, 0),
            (0.5, 2, 0, 2),
        ],
    )
    def test_weight_becomes_new_machines_beside_all_old(
        self, weight: float, new: int, old: int, expected: int
    ) -> None:
        """Fly balances over registered machines: a weight is new machines added beside the old."""
        assert canary_count(weight, new, old) == expected

    def test_retry_after_header(self) -> None:
        """Retry-After in seconds or as an HTTP date; absent is None."""
        assert retry_after(httpx.Response(429, headers={"Retry-After": "2"})) == 2.0
        assert retry_after(httpx.Response(429)) is None
        dated = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
        assert retry_after(dated) == 0.0


class TestValidate:
    @pytest.mark.parametrize(
        ("service", "message"),
        [
            ('memory = "300mb"', "steps of 256 MB"),
            ('memory = "1gb"\ncpu_kind = "performance"', "performance CPUs need at least 2 GB"),
            ("cpus = 3", "no shared machine with 3 CPUs"),
            ('memory = "4gb"', r"1 shared CPU\(s\) take 256 MB to 2 GB"),
        ],
    )
    def test_guest_sizes_fly_refuses(self, tmp_path: Path, service: str, message: str) -> None:
        """`tower validate` refuses what the Machines API would refuse, naming the key."""
        text = (
            f'[service]\nname = "shop"\n{service}\n[deploy]\ndriver = "fly"\n'
            '[deploy.fly]\napp = "shop"\n'
        )
        with pytest.raises(TowerError, match=message) as caught:
            parse_spec(text, source=str(tmp_path / "tower.toml"))
        assert "service" in str(caught.value)

    def test_sizes_fly_takes(self, tmp_path: Path) -> None:
        """shared-cpu-1x 512 MB and performance-2x 4 GB load; other drivers are not held to Fly."""
        for service in ('memory = "512mb"', 'memory = "4gb"\ncpus = 2\ncpu_kind = "performance"'):
            parse_spec(
                f'[service]\nname = "shop"\n{service}\n[deploy]\ndriver = "fly"\n',
                source=str(tmp_path / "tower.toml"),
            )
        parse_spec('[service]\nname = "shop"\nmemory = "300mb"\n', source="tower.toml")


class TestAPI:
    def test_bad_token_is_explained(self, fly: FakeFly) -> None:
        """A 401 names the token variable to check and does not echo the token."""
        api = FlyAPI(fly.url, "wrong", "shop-prod")
        with pytest.raises(DriverError, match="401") as caught:
            api.list()
        assert caught.value.hint == "check the token in $FLY_API_TOKEN"
        assert "wrong" not in str(caught.value)

    def test_rate_limit_is_waited_out(self, fly: FakeFly) -> None:
        """Six creates meet the documented 1 req/s burst 3 with 429 + Retry-After; all succeed."""
        api = FlyAPI(fly.url, TOKEN, "shop-prod")
        for _ in range(6):
            api.create({"config": {"image": "img:1"}, "region": "fra"})
        assert len(alive(fly)) == 6
        assert [s for _, p, s in fly.requests if p.endswith("/machines")].count(429) >= 2
        assert api.retries >= 2

    def test_server_errors_are_retried(self) -> None:
        """A 503 then a 200: the call succeeds after a backoff."""

        class Flaky(FakeServer):
            def handle(self, request: Request) -> Response:
                if len(self.requests) == 1:
                    return Response(503, b'{"error": "try again"}')
                return Response(200, b"[]", {"content-type": "application/json"})

        with Flaky().running_for() as server:
            api = FlyAPI(server.url, TOKEN, "shop-prod")
            assert api.list() == []
            assert api.retries == 1

    def test_leases_guard_changes(self, fly: FakeFly) -> None:
        """A leased machine refuses changes without the nonce (409) and takes them with it."""
        api = FlyAPI(fly.url, TOKEN, "shop-prod")
        machine = api.create({"config": {"image": "img:1"}, "skip_service_registration": True})
        nonce = api.acquire_lease(machine["id"], 30, "test")
        with pytest.raises(DriverError, match="409"):
            api.cordon(machine["id"])
        api.uncordon(machine["id"], nonce)
        api.release_lease(machine["id"], nonce)
        api.cordon(machine["id"])
        assert [c[2] for c in fly.changes] == [False, True, False]

    def test_wait_outlasts_the_per_call_limit(self) -> None:
        """/wait answers 408 after its limit; the client asks again until its own deadline."""
        fake = fake_fly(start_delay=2.0, max_wait=1.0)
        try:
            api = FlyAPI(fake.url, TOKEN, "shop-prod")
            machine = api.create({"config": {"image": "img:1"}})
            api.wait(machine["id"], "started", 10)
            assert fake.view(fake.machines[machine["id"]])["state"] == "started"
            waits = [p for _, p, _ in fake.requests if p.endswith("/wait")]
            assert len(waits) >= 2
            other = api.create({"config": {"image": "img:1"}})
            with pytest.raises(DriverError, match="did not reach started within 1s"):
                api.wait(other["id"], "started", 1)
        finally:
            fake.stop()

    def test_metadata_null(self, fly: FakeFly, tmp_path: Path) -> None:
        """Machines answered with "metadata": null are read, not crashed on."""
        api = FlyAPI(fly.url, TOKEN, "shop-prod")
        api.create({"config": {"image": "img:1"}, "region": "fra"})
        assert api.list()[0]["config"]["metadata"] is None
        _, driver = engine_for(tmp_path, fly)
        assert driver.instances() == []
        assert driver.adopt() is None


class TestHealth:
    def started(self, fly: FakeFly, image: str) -> tuple[Any, Instance]:
        api = FlyAPI(fly.url, TOKEN, "shop-prod")
        config = _flyctl_config(image, "app", 3000)
        machine = api.create({"config": config, "region": "fra"})
        api.wait(machine["id"], "started", 10)
        return api, Instance(machine["id"], "r", address=machine["private_ip"])

    def test_empty_checks_do_not_pass(self, fly: FakeFly, tmp_path: Path) -> None:
        """Started with "checks": [] (nothing ran yet) is not healthy: every check must report."""
        _, driver = engine_for(tmp_path, fly)
        _, instance = self.started(fly, "registry.fly.io/shop:good")
        probe = driver.probe(instance, "/api/health", 1.0)
        assert not probe.ok and "0 of 1 reported" in probe.detail

    def test_passing_ignores_the_compat_check(self, fly: FakeFly, tmp_path: Path) -> None:
        """flaps' bg_deployments_compat check (warning) is filtered; the service check decides."""
        _, driver = engine_for(tmp_path, fly)
        api, instance = self.started(fly, "registry.fly.io/shop:good")
        deadline = time.time() + 10
        while not (probe := driver.probe(instance, "/api/health", 1.0)).ok:
            assert time.time() < deadline, probe.detail
            time.sleep(0.2)
        names = [c["name"] for c in api.get(instance.id)["checks"]]
        assert any(n.startswith("bg_deployments_compat") for n in names)
        assert "1 Fly check(s) passing" in probe.detail

    def test_every_check_critical_fails_fast(self, fly: FakeFly, tmp_path: Path) -> None:
        """Critical in critical_limit successive check runs: a fatal probe, not a long wait."""
        _, driver = engine_for(tmp_path, fly)
        _, instance = self.started(fly, "registry.fly.io/shop:bad")
        started = time.time()
        while not (probe := driver.probe(instance, "/api/health", 1.0)).fatal:
            assert not probe.ok
            assert time.time() - started < 10
            time.sleep(0.1)
        assert "critical 3 runs in a row" in probe.detail

    def test_own_probe_through_the_private_address(self, tmp_path: Path) -> None:
        """Where the private network answers, tower's own readiness probe must pass too."""

        class Unready(FakeServer):
            def handle(self, request: Request) -> Response:
                return Response(503, b"not ready")

        app = Unready().start()
        fake = fake_fly(private_ip=lambda m: "127.0.0.1")
        try:
            _, driver = engine_for(tmp_path, fake)
            driver.port = app.port
            _, instance = self.started(fake, "registry.fly.io/shop:good")
            deadline = time.time() + 10
            while "passing" not in (probe := driver.probe(instance, "/api/health", 1.0)).detail:
                assert time.time() < deadline, probe.detail
                time.sleep(0.2)
            assert not probe.ok and "answered 503" in probe.detail
            assert app.requests[-1].path == "/api/health"
        finally:
            fake.stop()
            app.stop()


class TestDeploysOnFly:
    def test_first_deploy_on_an_empty_app(self, fly: FakeFly, tmp_path: Path) -> None:
        """Created outside the proxy in fly.toml's primary_region, gated on checks, then registered."""
        engine, _ = engine_for(tmp_path, fly)
        release = engine.deploy(version="1.0")
        assert release.status == "succeeded", release.reason
        created = [b for m, p, b in fly.bodies if p == "/v1/apps/shop-prod/machines"]
        assert len(created) == 2
        assert all(b["skip_service_registration"] is True for b in created)
        assert all(b["region"] == "fra" for b in created)
        assert fly.pool() == machines_of(fly, release.id)
        assert all(with_nonce for _, _, with_nonce in fly.changes), "every change held the lease"

    @pytest.mark.parametrize("strategy", ["bluegreen", "canary", "rolling"])
    def test_failing_checks_never_registered(
        self, fly: FakeFly, tmp_path: Path, strategy: str
    ) -> None:
        """Checks empty for 2 s, then critical: no request ever reaches a new machine."""
        fly.seed(2, image="registry.fly.io/shop:1")
        engine, _ = engine_for(tmp_path, fly, strategy=strategy, deadline="60s")
        with fly.traffic(rate=40):
            started = time.time()
            bad = engine.deploy(version="2.0", image="registry.fly.io/shop:bad")
            took = time.time() - started
        assert bad.status == "rolled_back", bad.reason
        assert "critical 3 runs in a row" in bad.reason
        assert took < 30, "failed fast, not at the 60 s deadline"
        new = [m.id for m in fly.machines.values() if m.config["image"].endswith(":bad")]
        assert new and not set(new) & fly.ever_registered
        assert routed_to(fly, new) == 0
        assert not set(new) & set(alive(fly))
        assert min(healthy_during(fly, started, time.time())) >= 2

    @pytest.mark.parametrize("strategy", ["canary", "rolling"])
    def test_capacity_never_drops_during_ten_to_ten(
        self, fly: FakeFly, tmp_path: Path, strategy: str
    ) -> None:
        """10 -> 10: registered healthy machines never fall below the 10 that served."""
        olds = fly.seed(10, image="registry.fly.io/shop:1", regions=("fra", "ams"))
        engine, _ = engine_for(
            tmp_path,
            fly,
            strategy=strategy,
            instances=10,
            batch=5,
            deadline="60s",
            steps=(("5%", "300ms"), ("50%", "300ms")),
        )
        with fly.traffic(rate=40):
            started = time.time()
            release = engine.deploy(version="2.0", image="registry.fly.io/shop:2")
            ended = time.time()
        assert release.status == "succeeded", release.reason
        assert min(healthy_during(fly, started, ended)) >= 10
        assert fly.pool() == machines_of(fly, release.id)
        assert not set(olds) & set(alive(fly))
        regions = sorted(fly.machines[m].region for m in machines_of(fly, release.id))
        assert regions == ["ams"] * 5 + ["fra"] * 5, "multi-region apps keep their regions"
        if strategy == "canary":
            routes = [s.message for s in engine.show(release.id).steps if s.state == "route"]
            assert "1 of 11 machines run" in routes[0]
            assert "(Fly balances by load and region)" in routes[0]
        adopted = engine.releases()[-1]
        assert adopted.kind == "adopt" and adopted.status == "succeeded"

    def test_six_machines_under_the_rate_limit(self, fly: FakeFly, tmp_path: Path) -> None:
        """Six machines created at 1 req/s burst 3: 429s are waited out, the deploy completes."""
        engine, driver = engine_for(tmp_path, fly, strategy="immediate", instances=6)
        release = engine.deploy(version="1.0")
        assert release.status == "succeeded", release.reason
        assert len(machines_of(fly, release.id)) == 6
        assert any(s == 429 for _, _, s in fly.requests)
        assert driver.api.retries > 0

    def test_failed_start_leaves_nothing(self, fly: FakeFly, tmp_path: Path) -> None:
        """The org limit refuses the 3rd machine: the two created (and volumes) are destroyed."""
        fly.capacity = 3
        fly.seed(1, image="registry.fly.io/shop:1")
        engine, _ = engine_for(tmp_path, fly, strategy="bluegreen", instances=3)
        release = engine.deploy(version="2.0", image="registry.fly.io/shop:2")
        assert release.status == "rolled_back", release.reason
        assert "machine limit" in release.reason
        assert machines_of(fly, release.id) == []
        assert {fly.machines[m].config["image"] for m in alive(fly)} == {"registry.fly.io/shop:1"}
        assert fly.pool() == alive(fly)

    def test_new_machines_equal_the_running_config(self, fly: FakeFly, tmp_path: Path) -> None:
        """Field by field the same as what ran, except image, env, tower metadata and volume ids."""
        api = FlyAPI(fly.url, TOKEN, "shop-prod")
        olds = []
        for region in ("fra", "ams"):
            volume = api.create_volume({"name": "data", "region": region, "size_gb": 3})
            config = _flyctl_config("registry.fly.io/shop:1", "app", 3000)
            config["mounts"] = [
                {"volume": volume["id"], "path": "/data", "name": "data", "size_gb": 3}
            ]
            config["processes"] = [{"cmd": ["node", "server.js"]}]
            olds.append(fly.seed(1, config=config, regions=(region,))[0])
        worker = fly.seed(1, group="worker")[0]
        worker_config = dict(fly.machines[worker].config)
        engine, _ = engine_for(tmp_path, fly, instances=2, deadline="60s")
        release = engine.deploy(version="2.0", image="registry.fly.io/shop:2", env={"B": "2"})
        assert release.status == "succeeded", release.reason
        new = machines_of(fly, release.id)
        assert len(new) == 2
        old_configs = {fly.machines[m].region: fly.machines[m].config for m in olds}
        for machine_id in new:
            machine = fly.machines[machine_id]
            before = old_configs[machine.region]
            after = machine.config
            assert after["image"] == "registry.fly.io/shop:2"
            assert after["env"] == {**before["env"], "B": "2"}
            tower_keys = {"tower_release", "tower_version"}
            assert {k: v for k, v in after["metadata"].items() if k not in tower_keys} == {
                k: v for k, v in before["metadata"].items() if k not in tower_keys
            }
            for key in (
                "services",
                "processes",
                "guest",
                "restart",
                "stop_config",
                "statics",
                "init",
            ):
                assert after[key] == before[key], key
            assert [{**m, "volume": ""} for m in after["mounts"]] == [
                {**m, "volume": ""} for m in before["mounts"]
            ]
            assert after["mounts"][0]["volume"] != before["mounts"][0]["volume"]
            assert fly.volumes[after["mounts"][0]["volume"]]["region"] == machine.region
        assert fly.machines[worker].config == worker_config and not fly.machines[worker].destroyed
        assert not any(worker in path for _, path, _ in fly.changes)

    def test_volume_is_not_attached_twice(self, fly: FakeFly) -> None:
        """A second machine naming an attached volume is refused (422)."""
        api = FlyAPI(fly.url, TOKEN, "shop-prod")
        volume = api.create_volume({"name": "data", "region": "fra", "size_gb": 1})
        config = {"image": "img:1", "mounts": [{"volume": volume["id"], "path": "/data"}]}
        api.create({"config": config, "region": "fra"})
        with pytest.raises(DriverError, match="already attached"):
            api.create({"config": config, "region": "fra"})

    def test_release_command_runs_before_machines(self, fly: FakeFly, tmp_path: Path) -> None:
        """release_command runs in a one-off machine first; success lets the deploy go on."""
        fly.seed(1, image="registry.fly.io/shop:1")
        engine, _ = engine_for(tmp_path, fly, release_command="bin/migrate up")
        release = engine.deploy(version="2.0", image="registry.fly.io/shop:2")
        assert release.status == "succeeded", release.reason
        created = [b for m, p, b in fly.bodies if p == "/v1/apps/shop-prod/machines"]
        assert created[0]["config"]["init"] == {"cmd": ["bin/migrate", "up"]}
        assert created[0]["config"]["metadata"]["fly_process_group"] == "fly_app_release_command"
        assert all(b["config"]["metadata"].get("tower_release") for b in created[1:])

    def test_failing_release_command_aborts_before_traffic(
        self, fly: FakeFly, tmp_path: Path
    ) -> None:
        """A release_command exiting 1 rolls back before any new machine exists or gets traffic."""
        olds = fly.seed(2, image="registry.fly.io/shop:1")
        fly.release_results["bin/migrate up"] = 1
        engine, _ = engine_for(tmp_path, fly, release_command="bin/migrate up")
        with fly.traffic(rate=40):
            release = engine.deploy(version="2.0", image="registry.fly.io/shop:2")
        assert release.status == "rolled_back"
        assert "release_command 'bin/migrate up' exited 1" in release.reason
        assert machines_of(fly, release.id, alive=False) == []
        assert {r.machine for r in fly.routed} == set(olds)
        assert fly.pool() == sorted(olds)

    def test_bluegreen_rollback_reuses_warm_machines(self, fly: FakeFly, tmp_path: Path) -> None:
        """After blue-green the old machines stay (cordoned); `tower rollback` uncordons them."""
        engine, _ = engine_for(tmp_path, fly, strategy="bluegreen")
        blue = engine.deploy(version="1.0")
        green = engine.deploy(version="2.0", strategy=Strategy.BLUEGREEN)
        assert green.status == "succeeded", green.reason
        assert fly.pool() == machines_of(fly, green.id)
        assert len(machines_of(fly, blue.id)) == 2
        creates = len([1 for _, p, _ in fly.bodies if p == "/v1/apps/shop-prod/machines"])
        back = engine.rollback()
        assert back.status == "succeeded", back.reason
        assert len([1 for _, p, _ in fly.bodies if p == "/v1/apps/shop-prod/machines"]) == creates
        assert fly.pool() == machines_of(fly, blue.id)
        assert machines_of(fly, green.id) == []

    def test_lease_held_by_someone_else_fails_and_rolls_back(
        self, fly: FakeFly, tmp_path: Path
    ) -> None:
        """Another tool holding an old machine's lease stops the switch; the deploy is undone."""
        engine, _ = engine_for(tmp_path, fly, strategy="immediate")
        first = engine.deploy(version="1.0")
        victim = machines_of(fly, first.id)[0]
        httpx.post(
            f"{fly.url}/v1/apps/shop-prod/machines/{victim}/lease",
            json={"ttl": 60},
            headers={"authorization": f"Bearer {TOKEN}", "x-fake-owner": "flyctl@laptop"},
        )
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back", second.reason
        assert "is leased by flyctl@laptop until" in second.reason
        assert fly.pool() == machines_of(fly, first.id)
        assert machines_of(fly, second.id) == []


class TestAnalysisOnFly:
    def test_errors_seen_in_fly_prometheus_roll_back(self, fly: FakeFly, tmp_path: Path) -> None:
        """Canary analysis reads Fly's managed Prometheus for the canary's machines, and says so."""
        fly.seed(2, image="registry.fly.io/shop:1")
        engine, _ = engine_for(
            tmp_path, fly, conditions=("error_rate < 5%",), steps=(("50%", "2s"),)
        )
        with fly.traffic(rate=60):
            bad = engine.deploy(version="2.0", image="registry.fly.io/shop:err")
        assert bad.status == "rolled_back", bad.reason
        assert "error_rate" in bad.reason
        analyses = [s for s in engine.show(bad.id).steps if s.state == "analyse"]
        assert "Fly managed Prometheus" in analyses[-1].message
        assert analyses[-1].detail["requests"] >= 5

    def test_healthy_canary_passes(self, fly: FakeFly, tmp_path: Path) -> None:
        """Good numbers from the same source let the canary through."""
        fly.seed(2, image="registry.fly.io/shop:1")
        engine, _ = engine_for(
            tmp_path, fly, conditions=("error_rate < 5%",), steps=(("50%", "2s"),)
        )
        with fly.traffic(rate=60):
            good = engine.deploy(version="2.0", image="registry.fly.io/shop:2")
        assert good.status == "succeeded", good.reason


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

    def test_app_and_region_from_the_environment(self, fly: FakeFly, tmp_path: Path) -> None:
        """The app defaults to environments.<env>.fly_app, the region to fly.toml's; no token kept."""
        _, driver = engine_for(tmp_path, fly)
        assert driver.spec.app == "shop-prod"
        assert driver.region == "fra"
        assert TOKEN not in repr(driver.spec) and TOKEN not in str(vars(driver))
