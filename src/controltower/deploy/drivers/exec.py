"""The exec driver: shell commands for any other platform (Vercel, kubectl, a script).

Five commands, each run by ``sh -c`` in the spec's directory with the release
in its environment; a non-zero exit is a failure:

=========  =============================================================  ======================
command    when                                                           extra variables
=========  =============================================================  ======================
deploy     start a release that takes no traffic yet                      ``TOWER_COUNT``
status     readiness of the release, polled by the health gate (exit 0)   ``TOWER_PATH``
switch     set the traffic split                                          ``TOWER_WEIGHT``,
                                                                          ``TOWER_WEIGHTS``,
                                                                          ``TOWER_PREVIOUS_RELEASE_ID``
rollback   send all traffic back to an earlier release (else ``switch``)  as ``switch``
stop       retire a release                                               ``TOWER_COUNT``
=========  =============================================================  ======================

An optional ``build`` command runs at deploy time; the last line it prints is the
release's artifact (an image reference, a URL, a path), recorded with the release
and given to ``deploy`` as ``TOWER_ARTIFACT``, so a rollback deploys the earlier
artifact again. A reference with ``@sha256:`` gives the digest.

Every command gets ``TOWER_SERVICE``, ``TOWER_RELEASE_ID``, ``TOWER_VERSION``,
``TOWER_IMAGE`` and ``TOWER_URL``: the last line ``deploy`` printed when it
looks like a URL (``vercel deploy`` prints the deployment's). ``TOWER_WEIGHT``
is the percentage of traffic for ``TOWER_RELEASE_ID``; ``TOWER_WEIGHTS`` is
JSON of every release's share. Releases started, their URLs and the last split
are remembered in a small state file (``[deploy.exec] state_file``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controltower.deploy.drivers.base import Artifact, Driver, Instance, Probe, ReleaseInfo
from controltower.exceptions import DriverError
from controltower.spec.deploy import ExecDriverSpec


def _percent(weight: float) -> str:
    return f"{round(weight * 100, 2):g}"


def _last_url(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if lines and lines[-1].startswith(("http://", "https://")) and " " not in lines[-1]:
        return lines[-1]
    return ""


class ExecDriver(Driver):
    name = "exec"
    supports_weights = True

    def __init__(self, spec: ExecDriverSpec, *, root: Path, url: str | None, service: str) -> None:
        if not spec.deploy or not spec.switch:
            raise DriverError(
                "[deploy.exec] needs at least deploy and switch commands",
                hint='e.g. deploy = "vercel deploy --prebuilt" and '
                'switch = "vercel alias set $TOWER_URL shop.example.com"',
            )
        self.spec = spec
        self.root = root
        self.url = url
        self.service = service
        self.state_path = root / spec.state_file

    # ---- state -------------------------------------------------------------------------

    def _state(self) -> dict[str, dict[str, Any]]:
        try:
            data: dict[str, dict[str, Any]] = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, state: dict[str, dict[str, Any]]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_path)

    def _env(self, release_id: str, **extra: str) -> dict[str, str]:
        data = self._state().get(release_id, {})
        env = {
            "TOWER_RELEASE_ID": release_id,
            "TOWER_VERSION": str(data.get("version", "")),
            "TOWER_IMAGE": str(data.get("image", "")),
            "TOWER_URL": str(data.get("url", "")),
        }
        env.update({f"TOWER_{k.upper()}": v for k, v in extra.items()})
        return env

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
                f"[deploy.exec] {what} timed out after {self.spec.timeout:g}s",
                hint="raise [deploy.exec] timeout or make the command finish sooner",
            ) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            raise DriverError(
                f"[deploy.exec] {what} {command!r} exited {done.returncode}: {tail[0]}"
            )
        return done.stdout

    # ---- driver ------------------------------------------------------------------------

    def artifact(self, release: ReleaseInfo) -> Artifact | None:
        """Run ``build``; its last line of output is the artifact's reference."""
        if not self.spec.build:
            return None
        env = {
            **release.env,
            "TOWER_RELEASE_ID": release.id,
            "TOWER_VERSION": release.version,
            "TOWER_IMAGE": release.image,
        }
        lines = [line.strip() for line in self._run("build", self.spec.build, env).splitlines()]
        ref = next((line for line in reversed(lines) if line), "")
        if not ref:
            raise DriverError(
                f"[deploy.exec] build {self.spec.build!r} printed nothing",
                hint="print the artifact's reference (an image, a URL, a path) as its last line",
            )
        _, _, digest = ref.partition("@sha256:")
        return Artifact(
            kind="reference", ref=ref, digest=f"sha256:{digest}" if digest else "", size=None
        )

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        env = {
            **release.env,
            "TOWER_RELEASE_ID": release.id,
            "TOWER_VERSION": release.version,
            "TOWER_IMAGE": release.image,
            "TOWER_ARTIFACT": release.artifact,
            "TOWER_URL": "",
            "TOWER_COUNT": str(count),
        }
        output = self._run("deploy", self.spec.deploy, env)
        state = self._state()
        state[release.id] = {
            "version": release.version,
            "image": release.image,
            "url": _last_url(output),
            "weight": 0.0,
        }
        self._save(state)
        return self.instances(release.id)

    def instances(self, release_id: str | None = None) -> list[Instance]:
        return [
            Instance(
                id=key,
                release=key,
                version=str(data.get("version", "")),
                state="running",
                address=str(data.get("url", "")),
            )
            for key, data in self._state().items()
            if release_id is None or key == release_id
        ]

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        if not self.spec.status:
            return Probe(True, "no status command; assumed ready")
        try:
            self._run("status", self.spec.status, self._env(instance.release, path=path))
        except DriverError as exc:
            return Probe(False, exc.message)
        return Probe(True, "status exited 0")

    def _switch(self, what: str, command: str, weights: dict[str, float]) -> None:
        releases = list(weights)
        target = releases[0]
        self._run(
            what,
            command,
            self._env(
                target,
                weight=_percent(weights[target]),
                previous_release_id=releases[1] if len(releases) > 1 else "",
                weights=json.dumps(weights),
            ),
        )
        state = self._state()
        for key, data in state.items():
            data["weight"] = weights.get(key, 0.0)
        self._save(state)

    def route(self, weights: dict[str, float]) -> dict[str, float] | None:
        if weights:
            self._switch("switch", self.spec.switch, weights)
        return None

    def rollback_to(self, release_id: str) -> None:
        self._switch("rollback", self.spec.rollback or self.spec.switch, {release_id: 1.0})

    def routes(self) -> dict[str, float]:
        return {
            key: float(data.get("weight") or 0.0)
            for key, data in self._state().items()
            if float(data.get("weight") or 0.0) > 0
        }

    def stop(
        self,
        release_id: str,
        *,
        count: int = 0,
        ids: Sequence[str] = (),
        drain: float = 30.0,
        after: float = 0.0,
    ) -> None:
        if after > 0:
            return
        state = self._state()
        if release_id not in state:
            return
        if self.spec.stop:
            self._run("stop", self.spec.stop, self._env(release_id, count=str(count)))
        if not count:
            state.pop(release_id, None)
            self._save(state)

    def public_url(self) -> str | None:
        return self.url
