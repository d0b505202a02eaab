"""The deploy reconciler's loop in ``tower serve`` and ``tower monitor``: how it reports failures."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from controltower.deploy.reconciler import DeployReconciler
from controltower.exceptions import DriverError
from controltower.spec import parse_spec
from controltower.store import Store

SPEC = """
[service]
name = "shop"

[deploy]
driver = "fly"

[deploy.fly]
app = "shop"
token_env = "TOWER_TEST_NO_SUCH_FLY_TOKEN"
"""


def _reconciler(store: Store, tmp_path: Path) -> DeployReconciler:
    spec = parse_spec(SPEC, source=str(tmp_path / "tower.toml"))
    return DeployReconciler(spec, store, poll=0.01)


async def _run_for(reconciler: DeployReconciler, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "controltower.deploy" and r.levelno == logging.WARNING
    ]


class TestFailureWarnings:
    def test_a_driver_that_cannot_be_built_is_warned_about_once(
        self, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A Fly driver without its token fails every tick; the warning is logged once, not per poll."""
        reconciler = _reconciler(store, tmp_path)
        ticks = 0

        def tick() -> list[object]:
            nonlocal ticks
            ticks += 1
            reconciler._open()  # what a tick does once the store knows a release
            return []

        reconciler.tick = tick  # type: ignore[assignment,method-assign]
        with caplog.at_level(logging.DEBUG, logger="controltower.deploy"):
            asyncio.run(_run_for(reconciler, 0.5))
        warned = _warnings(caplog)
        assert ticks >= 5
        assert len(warned) == 1, warned
        assert "TOWER_TEST_NO_SUCH_FLY_TOKEN" in warned[0]
        assert reconciler.failing is not None

    def test_a_new_reason_is_warned_again_and_recovery_resets(
        self, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A changed reason warns again; after a good tick the same reason warns anew."""
        reconciler = _reconciler(store, tmp_path)
        reasons = iter(["first", "first", "second", "second", None, "second", "second"])

        def tick() -> list[object]:
            reason = next(reasons, None)
            if reason is not None:
                raise DriverError(reason)
            return []

        reconciler.tick = tick  # type: ignore[assignment,method-assign]
        with caplog.at_level(logging.INFO, logger="controltower.deploy"):
            asyncio.run(_run_for(reconciler, 0.5))
        warned = _warnings(caplog)
        assert [w.split(" (")[0] for w in warned] == [
            "deploy reconciler: first",
            "deploy reconciler: second",
            "deploy reconciler: second",
        ]
        assert any(r.getMessage() == "deploy reconciler: working again" for r in caplog.records)
        assert reconciler.failing is None
