"""The embedded driver: app processes on this machine behind tower's own proxy."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

import httpx

from controltower.deploy.drivers.base import (
    Artifact,
    Driver,
    Instance,
    Probe,
    ReleaseInfo,
    TargetMetrics,
)
from controltower.deploy.local.client import AgentClient
from controltower.deploy.local.snapshots import SnapshotStore
from controltower.exceptions import DriverError
from controltower.spec.deploy import LocalDriverSpec

CRASH_LOOP = 3


def build_argv(command: str, release: ReleaseInfo) -> list[str]:
    """The argument list of one instance; ``{port}`` is left for the agent to fill."""
    text = (
        command.replace("{python}", shlex.quote(sys.executable))
        .replace("{version}", shlex.quote(release.version))
        .replace("{release}", release.id)
    )
    return shlex.split(text)


def build_env(spec: LocalDriverSpec, release: ReleaseInfo) -> dict[str, str]:
    env = {key: value.replace("{version}", release.version) for key, value in spec.env.items()}
    env.update(release.env)
    env.update({"TOWER_RELEASE_ID": release.id, "TOWER_VERSION": release.version})
    return env


class LocalDriver(Driver):
    name = "local"

    def __init__(
        self, spec: LocalDriverSpec, *, root: Path, service: str, health_path: str
    ) -> None:
        if not spec.command:
            raise DriverError(
                "[deploy.local] command is empty",
                hint='set e.g. command = "{python} -m uvicorn app:app --port {port}"',
            )
        self.spec = spec
        self.root = root
        self.service = service
        self.health_path = health_path
        self.state_dir = (root / spec.state_dir).resolve()
        self.agent = AgentClient(self.state_dir)
        self.snapshots = SnapshotStore(self.state_dir / "artifacts")
        self.http = httpx.Client(timeout=2.0)

    def prepare(self) -> None:
        info = self.agent.ensure(
            service=self.service, host=self.spec.proxy_host, port=self.spec.proxy_port
        )
        if self.spec.proxy_port and int(info["proxy_port"]) != self.spec.proxy_port:
            raise DriverError(
                f"the local agent in {self.state_dir} serves port {info['proxy_port']}, "
                f"but [deploy.local] proxy_port is {self.spec.proxy_port}",
                hint="stop it with `tower deploy agent stop` and deploy again",
            )

    def artifact(self, release: ReleaseInfo) -> Artifact:
        """A snapshot of the app folder (or of the ``artifact`` paths), taken now."""
        snapshot = self.snapshots.snapshot(
            (self.root / self.spec.cwd).resolve(),
            include=self.spec.artifact,
            exclude=[self.state_dir],
        )
        return Artifact(
            kind="snapshot",
            ref=str(snapshot.path),
            digest=snapshot.digest,
            size=snapshot.size,
            detail={"files": snapshot.files, "hard_linked": snapshot.linked},
        )

    def has_artifact(self, ref: str) -> bool:
        return not ref or self.snapshots.exists(ref)

    def prune_artifacts(self, keep: Collection[str]) -> list[str]:
        return self.snapshots.prune(keep)

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        if release.artifact and not self.snapshots.exists(release.artifact):
            raise DriverError(
                f"the snapshot {release.artifact} of release {release.id} is gone",
                hint="retention ([deploy.local] artifact_retain) pruned it; deploy it again",
            )
        reply = self.agent.call(
            "start",
            release=release.id,
            version=release.version,
            count=count,
            argv=build_argv(self.spec.command, release),
            cwd=release.artifact or str((self.root / self.spec.cwd).resolve()),
            env=build_env(self.spec, release),
            health_path=self.health_path,
        )
        return [_instance(raw) for raw in reply["instances"]]

    def instances(self, release_id: str | None = None) -> list[Instance]:
        reply = self.agent.call("list")
        found = [_instance(raw) for raw in reply["instances"]]
        return [i for i in found if release_id is None or i.release == release_id]

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        current = {i.id: i for i in self.instances()}.get(instance.id)
        if current is None:
            return Probe(False, "instance is gone", fatal=True)
        if current.detail.get("restarts", 0) >= CRASH_LOOP:
            return Probe(
                False,
                f"process crashed {current.detail['restarts']} times "
                f"(log: {self.state_dir / 'logs' / (instance.id + '.log')})",
                fatal=True,
            )
        if current.state != "running":
            return Probe(False, f"process is {current.state}")
        try:
            response = self.http.get(f"http://{current.address}{path}", timeout=timeout)
        except httpx.HTTPError as exc:
            return Probe(False, f"GET {path}: {type(exc).__name__}")
        ok = response.is_success
        retryable = response.status_code == 429 or "retry-after" in response.headers
        return Probe(ok, f"GET {path}: {response.status_code}", retryable=ok or retryable)

    def route(self, weights: dict[str, float]) -> dict[str, float] | None:
        self.agent.call("route", weights=weights)
        return None

    def routes(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.agent.call("list")["routes"].items()}

    def stop(
        self,
        release_id: str,
        *,
        count: int = 0,
        ids: Sequence[str] = (),
        drain: float = 30.0,
        after: float = 0.0,
    ) -> None:
        chosen = list(ids)
        if not chosen and count:
            chosen = [i.id for i in self.instances(release_id)][:count]
            if not chosen:
                return
        self.agent.call(
            "stop", release=release_id, ids=chosen, drain=drain, after=after, wait=after <= 0
        )

    def keep(self, release_id: str) -> None:
        self.agent.call("keep", release=release_id)

    def metrics(self, release_id: str, window: float) -> TargetMetrics | None:
        data = self.agent.call("metrics", release=release_id, window=window)
        return TargetMetrics(
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            error_rate=float(data["error_rate"]),
            p50=data.get("p50"),
            p95=data.get("p95"),
            p99=data.get("p99"),
        )

    def public_url(self) -> str:
        host = self.spec.proxy_host if self.spec.proxy_host != "0.0.0.0" else "127.0.0.1"
        return f"http://{host}:{self.spec.proxy_port}"

    def close(self) -> None:
        self.http.close()


def _instance(raw: dict[str, object]) -> Instance:
    return Instance(
        id=str(raw["id"]),
        release=str(raw["release"]),
        version=str(raw.get("version", "")),
        state=str(raw["state"]),
        healthy=bool(raw.get("healthy")),
        address=f"127.0.0.1:{raw['port']}",
        detail={"pid": raw.get("pid"), "port": raw.get("port"), "restarts": raw.get("restarts", 0)},
    )
