"""Built-in checks against real servers: Redis, Stripe and Supabase stand-ins, TCP, disk, memory, loop lag."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controltower.appkit import Check, CheckFailed, Health, Observation, checks
from controltower.appkit.checks import read_memory
from tests.appkit_support import ApiServer, closed_port, redis_server

STRIPE_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
ANON_KEY = "eyJhbGciOiJIUzI1NiJ9.anon.sig"


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(STRIPE_KEY, ANON_KEY)
    yield server
    server.close()


async def one(check: Check) -> dict[str, object]:
    report = await Health(check).run()
    return report.as_ietf()["checks"][check.key][0]  # type: ignore[no-any-return]


class TestStripe:
    async def test_valid_key_passes_with_bearer_auth(self, api: ApiServer) -> None:
        """The Stripe check calls GET /v1/balance with the secret key as a bearer token."""
        entry = await one(checks.stripe(STRIPE_KEY, api_base=api.url))
        assert entry["status"] == "pass"
        path, headers = api.requests[-1]
        assert path == "/v1/balance" and headers["Authorization"] == f"Bearer {STRIPE_KEY}"

    async def test_bad_key_fails_without_leaking_it(self, api: ApiServer) -> None:
        """A rejected key (401) fails with an output that does not contain the key."""
        bad = "sk_live_wrongwrongwrong123"
        entry = await one(checks.stripe(bad, api_base=api.url))
        assert entry["status"] == "fail"
        assert entry["output"] == "stripe rejected the API key (HTTP 401)"
        assert bad not in str(entry)

    async def test_rate_limit_is_warn_and_outage_is_fail(self, api: ApiServer) -> None:
        """429 means Stripe is up but busy (warn); 5xx means it is down (fail)."""
        api.status_override = 429
        assert (await one(checks.stripe(STRIPE_KEY, api_base=api.url)))["status"] == "warn"
        api.status_override = 503
        entry = await one(checks.stripe(STRIPE_KEY, api_base=api.url))
        assert entry["status"] == "fail" and entry["output"] == "stripe answered HTTP 503"

    async def test_api_base_from_environment(
        self, api: ApiServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without api_base, the check calls $STRIPE_API_BASE (a stand-in, stripe-mock), else Stripe."""
        monkeypatch.setenv("STRIPE_API_BASE", api.url + "/")
        check = checks.stripe(STRIPE_KEY)
        assert check.api_base == api.url
        assert (await one(check))["status"] == "pass"
        monkeypatch.delenv("STRIPE_API_BASE")
        assert checks.stripe(STRIPE_KEY).api_base == "https://api.stripe.com"


class TestSupabase:
    async def test_anon_key_passes(self, api: ApiServer) -> None:
        """The Supabase check calls /rest/v1/ with the anon key in apikey."""
        entry = await one(checks.supabase(api.url, ANON_KEY))
        assert entry["status"] == "pass"
        path, headers = api.requests[-1]
        assert path == "/rest/v1/" and headers["apikey"] == ANON_KEY

    async def test_wrong_key_fails(self, api: ApiServer) -> None:
        """A wrong key (401) fails and the key is not in the output."""
        entry = await one(checks.supabase(api.url, "eyJhbGciOiJIUzI1NiJ9.wrong.key"))
        assert entry["output"] == "supabase rejected the API key (HTTP 401)"

    async def test_unreachable_fails_with_cause(self) -> None:
        """A project that cannot be reached fails with 'unreachable' and the cause."""
        entry = await one(checks.supabase(f"http://127.0.0.1:{closed_port()}", ANON_KEY, timeout=2))
        assert entry["status"] == "fail"
        assert str(entry["output"]).startswith("supabase unreachable: ")


class TestRedis:
    async def test_ping_passes_and_down_fails(self, tmp_path: Path) -> None:
        """The Redis check PINGs a real redis-server; a closed port fails."""
        with redis_server(tmp_path) as url:
            assert (await one(checks.redis(url)))["status"] == "pass"
        entry = await one(checks.redis(f"redis://:hunter2@127.0.0.1:{closed_port()}/0"))
        assert entry["status"] == "fail" and "hunter2" not in str(entry)


class TestTcp:
    async def test_tcp_connect(self, api: ApiServer) -> None:
        """The TCP check passes when something listens and fails on a refused port."""
        port = int(api.url.rsplit(":", 1)[1])
        assert (await one(checks.tcp("127.0.0.1", port)))["status"] == "pass"
        entry = await one(checks.tcp("127.0.0.1", closed_port(), name="queue"))
        assert entry["status"] == "fail" and str(entry["output"]).startswith("queue unreachable: ")


class TestDisk:
    async def test_thresholds(self, tmp_path: Path) -> None:
        """Disk free is reported in %; thresholds above the real free share warn or fail."""
        entry = await one(checks.disk(str(tmp_path), min_free=0.0, warn_free=0.0))
        assert entry["status"] == "pass" and entry["observedUnit"] == "%"
        assert (await one(checks.disk(str(tmp_path), min_free=0.0, warn_free=1.01)))[
            "status"
        ] == "warn"
        entry = await one(checks.disk(str(tmp_path), min_free=1.01))
        assert entry["status"] == "fail" and "free on" in str(entry["output"])


def _cgroup_v2(root: Path, current: int, limit: str, inactive: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.stat").write_text(f"anon 1\ninactive_file {inactive}\nactive_file 3\n")


class TestMemory:
    def test_cgroup_v2_working_set(self, tmp_path: Path) -> None:
        """cgroup v2: working set = memory.current - inactive_file, limit = memory.max."""
        _cgroup_v2(tmp_path, 600, "1000", 100)
        assert read_memory(str(tmp_path)) == (500, 1000)
        _cgroup_v2(tmp_path, 600, "max", 0)
        assert read_memory(str(tmp_path)) == (600, None)

    def test_cgroup_v1(self, tmp_path: Path) -> None:
        """cgroup v1: usage_in_bytes - total_inactive_file against limit_in_bytes; 'unlimited' is None."""
        v1 = tmp_path / "memory"
        v1.mkdir()
        (v1 / "memory.usage_in_bytes").write_text("800\n")
        (v1 / "memory.limit_in_bytes").write_text("1000\n")
        (v1 / "memory.stat").write_text("total_inactive_file 200\n")
        assert read_memory(str(tmp_path)) == (600, 1000)
        (v1 / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
        assert read_memory(str(tmp_path)) == (600, None)

    async def test_levels(self, tmp_path: Path) -> None:
        """Use over warn_above warns, over fail_above fails; a configured limit replaces the cgroup's."""
        _cgroup_v2(tmp_path, 900, "1000", 0)
        assert (await one(checks.memory(cgroup_root=str(tmp_path))))["status"] == "warn"
        _cgroup_v2(tmp_path, 990, "1000", 0)
        entry = await one(checks.memory(cgroup_root=str(tmp_path)))
        assert entry["status"] == "fail" and "99.0% of the 1000 byte limit" in str(entry["output"])
        entry = await one(checks.memory(cgroup_root=str(tmp_path), limit=10_000))
        assert (entry["status"], entry["observedValue"], entry["observedUnit"]) == (
            "pass",
            9.9,
            "%",
        )

    async def test_process_rss_without_cgroup(self, tmp_path: Path) -> None:
        """Without a cgroup, this process's RSS is measured against the configured limit."""
        entry = await one(checks.memory(cgroup_root=str(tmp_path / "none"), limit=1 << 40))
        assert entry["status"] == "pass" and 0 < float(entry["observedValue"]) < 1  # type: ignore[arg-type]


class TestEventLoopLag:
    async def test_blocked_loop_is_reported(self) -> None:
        """A callback blocking the loop for 300 ms shows as lag over fail_ms; non-critical, so warn."""
        loop = asyncio.get_running_loop()
        loop.call_later(0.002, time.sleep, 0.3)
        check = checks.event_loop_lag(warn_ms=50, fail_ms=200)
        report = await Health(check).run()
        (result,) = report.results
        assert result.status == "warn" and report.status == "warn"
        assert "event loop lag" in result.output

    async def test_idle_loop_passes(self) -> None:
        """An idle loop has a lag well under the warning level."""
        entry = await one(checks.event_loop_lag(warn_ms=100))
        assert entry["status"] == "pass" and entry["observedUnit"] == "ms"


class TestCustomCheck:
    async def test_subclass_in_a_few_lines(self) -> None:
        """A custom check is a small class with an async run()."""

        class Queue(Check):
            default_name = "queue"

            async def run(self) -> Observation:
                depth = 42
                if depth > 100:
                    raise CheckFailed("queue too deep")
                return Observation(depth, "jobs")

        entry = await one(Queue())
        assert (entry["observedValue"], entry["observedUnit"]) == (42, "jobs")
