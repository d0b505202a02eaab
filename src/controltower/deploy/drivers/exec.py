"""The exec driver: shell commands for any other platform (Vercel, kubectl, a script).

Each command runs with the release in its environment: ``TOWER_RELEASE_ID``,
``TOWER_VERSION``, ``TOWER_IMAGE``, ``TOWER_COUNT``, ``TOWER_WEIGHT`` (percent of
traffic for the release), ``TOWER_WEIGHTS`` (JSON of every release's share) and
the release's own variables. A non-zero exit is a failure. ``status`` exiting 0
means the release is ready. Releases started are remembered in a small state file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from controltower.deploy.drivers.base import Driver, Instance, Probe, ReleaseInfo
from controltower.exceptions import DriverError
from controltower.spec.deploy import ExecDriverSpec


def command_env(variables: dict[str, str], release: ReleaseInfo | None = None) -> dict[str, str]:
    env = dict(release.env) if release else {}
    if release:
        env.update(
            {
                "TOWER_RELEASE_ID": release.id,
                "TOWER_VERSION": release.version,
                "TOWER_IMAGE": release.image,
            }
        )
    env.update({f"TOWER_{k.upper()}": v for k, v in variables.items()})
    return env


class ExecDriver(Driver):
    name = "exec"
    supports_weights = True

    def __init__(self, spec: ExecDriverSpec, *, root: Path, url: str | None, service: str) -> None:
        if not spec.deploy or not spec.switch:
            raise DriverError(
                "[deploy.exec] needs at least deploy and switch commands",
                hint='e.g. deploy = "vercel deploy --prebuilt > .tower/url"',
            )
        self.spec = spec
        self.root = root
        self.url = url
        self.service = service
        self.state_path = root / spec.state_file

    def _state(self) -> dict[str, dict[str, object]]:
        try:
            data: dict[str, dict[str, object]] = json.loads(self.state_path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, dict[str, object]]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(state, indent=1))

    def _run(self, what: str, command: str, env: dict[str, str]) -> str:
        try:
            done = subprocess.run(
                command,
                shell=True,
                cwd=self.root,
                env={**os.environ, "TOWER_SERVICE": self.service, **env},
                capture_output=True,
                text=True,
                timeout=self.spec.timeout,
            )
        except subprocess.TimeoutExpired:
            raise DriverError(
                f"[deploy.exec] {what} timed out after {self.spec.timeout:g}s"
            ) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            raise DriverError(
                f"[deploy.exec] {what} {command!r} exited {done.returncode}: {tail[0]}"
            )
        return done.stdout

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        self._run("deploy", self.spec.deploy, command_env({"count": str(count)}, release))
        state = self._state()
        state[release.id] = {"version": release.version, "env": release.env, "image": release.image}
        self._save(state)
        return self.instances(release.id)

    def instances(self, release_id: str | None = None) -> list[Instance]:
        return [
            Instance(id=key, release=key, version=str(data.get("version", "")), state="running")
            for key, data in self._state().items()
            if release_id is None or key == release_id
        ]

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        if not self.spec.status:
            return Probe(True, "no status command; assumed ready")
        try:
            self._run(
                "status",
                self.spec.status,
                command_env({"release_id": instance.release, "path": path}),
            )
        except DriverError as exc:
            return Probe(False, exc.message)
        return Probe(True, "status exited 0")

    def route(self, weights: dict[str, float]) -> None:
        if not weights:
            return
        main = max(weights, key=lambda k: weights[k])
        self._run(
            "switch",
            self.spec.switch,
            command_env(
                {
                    "release_id": main,
                    "weight": str(round(weights[main] * 100)),
                    "weights": json.dumps(weights),
                }
            ),
        )

    def rollback_to(self, release_id: str) -> None:
        command = self.spec.rollback or self.spec.switch
        self._run(
            "rollback",
            command,
            command_env(
                {
                    "release_id": release_id,
                    "weight": "100",
                    "weights": json.dumps({release_id: 1.0}),
                }
            ),
        )

    def stop(
        self, release_id: str, *, count: int = 0, drain: float = 30.0, after: float = 0.0
    ) -> None:
        if after > 0:
            return
        state = self._state()
        if release_id not in state:
            return
        if self.spec.stop:
            self._run("stop", self.spec.stop, command_env({"release_id": release_id}))
        if not count:
            state.pop(release_id, None)
            self._save(state)

    def public_url(self) -> str | None:
        return self.url
