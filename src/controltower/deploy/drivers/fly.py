"""The fly driver: the Fly Machines REST API.

A release is a set of new Machines created with ``skip_service_registration``
(so Fly's proxy sends them nothing), waited on until ``started``, and gated on
their Fly checks. Traffic moves by ``uncordon`` (register a Machine's services
with the proxy) and ``cordon`` (take them out). Fly's proxy balances across
registered Machines, so a weight becomes a count of Machines: the effective
split is logged. Every change to a Machine holds its lease (nonce header).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import httpx

from controltower.deploy.drivers.base import Driver, Instance, Probe, ReleaseInfo
from controltower.exceptions import DriverError
from controltower.spec import Spec
from controltower.spec.deploy import FlyDriverSpec

NONCE_HEADER = "fly-machine-lease-nonce"
RELEASE_KEY = "tower_release"
GONE = ("destroyed", "destroying")


class LeaseHeld(DriverError):
    """Another process (flyctl, another deploy) holds a machine's lease."""


class WaitTimeout(Exception):
    """The wait endpoint answered 408: the state was not reached within its timeout."""


class FlyAPI:
    """A thin client of the documented endpoints tower uses."""

    def __init__(self, base_url: str, token: str, app: str, *, timeout: float = 30.0) -> None:
        self.app = app
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        nonce: str = "",
        ok: tuple[int, ...] = (200,),
        timeout: float | None = None,
    ) -> Any:
        headers = {NONCE_HEADER: nonce} if nonce else {}
        url = f"/apps/{self.app}/machines{path}"
        try:
            response = self.http.request(
                method,
                url,
                json=json,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise DriverError(
                f"Fly Machines API {method} {url}: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code == 408 and path.endswith("/wait"):
            raise WaitTimeout(path)
        if response.status_code not in ok:
            try:
                error = response.json().get("error", response.text)
            except ValueError:
                error = response.text
            hint = "check the token in $FLY_API_TOKEN" if response.status_code == 401 else None
            raise DriverError(
                f"Fly Machines API {method} {url}: {response.status_code} {error}".strip(),
                hint=hint,
            )
        if not response.content:
            return None
        return response.json()

    def list(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._call("GET", "")
        return data

    def get(self, machine_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/{machine_id}")
        return data

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self._call("POST", "", json=body)
        return data

    def update(self, machine_id: str, body: dict[str, Any], nonce: str = "") -> dict[str, Any]:
        data: dict[str, Any] = self._call("POST", f"/{machine_id}", json=body, nonce=nonce)
        return data

    def wait(self, machine_id: str, state: str, timeout: float, instance_id: str = "") -> None:
        """Wait until the machine is in ``state``; the API waits at most 60 s per call."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            params: dict[str, Any] = {"state": state, "timeout": max(1, min(60, math.ceil(left)))}
            if instance_id:
                params["instance_id"] = instance_id
            try:
                self._call(
                    "GET", f"/{machine_id}/wait", params=params, timeout=params["timeout"] + 10
                )
                return
            except WaitTimeout:
                if time.monotonic() >= deadline - 0.5:
                    raise DriverError(
                        f"Fly machine {machine_id} did not reach {state} within {timeout:g}s",
                        hint="see `fly machine status " + machine_id + "` and `fly logs`",
                    ) from None

    def lease_holder(self, machine_id: str) -> str:
        """Who holds the machine's lease and until when, as a phrase ("" when unknown)."""
        try:
            data = self._call("GET", f"/{machine_id}/lease")
        except DriverError:
            return ""
        info = (data or {}).get("data") or {}
        owner, expires = info.get("owner", ""), info.get("expires_at")
        if not owner:
            return ""
        until = (
            time.strftime(" until %H:%M:%S UTC", time.gmtime(int(expires)))
            if isinstance(expires, int | float)
            else ""
        )
        return f"{owner}{until}"

    def acquire_lease(self, machine_id: str, ttl: int, description: str = "") -> str:
        try:
            data = self._call(
                "POST",
                f"/{machine_id}/lease",
                json={"ttl": ttl, "description": description or "tower"},
                ok=(200, 201),
            )
        except DriverError as exc:
            if " 409 " not in exc.message:
                raise
            holder = self.lease_holder(machine_id)
            raise LeaseHeld(
                f"Fly machine {machine_id} is leased by {holder or 'someone else'}",
                hint=f"wait for it, or clear it: fly machine leases clear {machine_id} -a {self.app}",
            ) from None
        nonce = (data or {}).get("data", {}).get("nonce", "")
        if not nonce:
            raise DriverError(f"Fly Machines API gave no lease nonce for machine {machine_id}")
        return str(nonce)

    def release_lease(self, machine_id: str, nonce: str) -> None:
        self._call("DELETE", f"/{machine_id}/lease", nonce=nonce, ok=(200, 204))

    def cordon(self, machine_id: str, nonce: str = "") -> None:
        self._call("POST", f"/{machine_id}/cordon", nonce=nonce)

    def uncordon(self, machine_id: str, nonce: str = "") -> None:
        self._call("POST", f"/{machine_id}/uncordon", nonce=nonce)

    def stop(self, machine_id: str, nonce: str = "", timeout: float | None = None) -> None:
        body = {"timeout": f"{int(timeout)}s"} if timeout else None
        self._call("POST", f"/{machine_id}/stop", json=body, nonce=nonce)

    def destroy(self, machine_id: str, nonce: str = "", kill: bool = False) -> None:
        params = {"kill": "true"} if kill else None
        self._call("DELETE", f"/{machine_id}", params=params, nonce=nonce)

    def close(self) -> None:
        self.http.close()


def machine_config(
    spec: FlyDriverSpec,
    release: ReleaseInfo,
    *,
    port: int,
    readiness: str,
    cpus: int,
    memory_mb: int,
    cpu_kind: str,
) -> dict[str, Any]:
    """The ``config`` of a new Machine of ``release``: pure, tested by equality."""
    return {
        "image": release.image or spec.image,
        "env": dict(release.env),
        "guest": {"cpu_kind": cpu_kind, "cpus": cpus, "memory_mb": memory_mb},
        "metadata": {RELEASE_KEY: release.id, "tower_version": release.version},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": port,
                "ports": [
                    {"port": 80, "handlers": ["http"], "force_https": True},
                    {"port": 443, "handlers": ["tls", "http"]},
                ],
            }
        ],
        "checks": {
            "ready": {
                "type": "http",
                "port": port,
                "method": "GET",
                "path": readiness,
                "interval": "5s",
                "timeout": "2s",
            }
        },
        "restart": {"policy": "on-failure"},
    }


def split(weight: float, new: int, old: int) -> tuple[int, int]:
    """How many new and old Machines to register so the new share comes closest to ``weight``."""
    if weight >= 1.0 or old == 0:
        return new, 0
    if weight <= 0.0 or new == 0:
        return 0, old
    best = (1, old)
    for k_new in range(1, new + 1):
        for k_old in range(1, old + 1):
            share = k_new / (k_new + k_old)
            if abs(share - weight) < abs(best[0] / sum(best) - weight) - 1e-9:
                best = (k_new, k_old)
    return best


class FlyDriver(Driver):
    name = "fly"

    def __init__(
        self,
        spec: FlyDriverSpec,
        *,
        token: str,
        port: int,
        readiness: str,
        cpus: int = 1,
        memory_mb: int = 512,
        cpu_kind: str = "shared",
        public_url: str | None = None,
    ) -> None:
        if not spec.app:
            raise DriverError("[deploy.fly] app is empty", hint='set app = "your-fly-app"')
        self.spec = spec
        self.api = FlyAPI(spec.api_url, token, spec.app)
        self.port = port
        self.readiness = readiness
        self.cpus, self.memory_mb, self.cpu_kind = cpus, memory_mb, cpu_kind
        self.url = public_url or f"https://{spec.app}.fly.dev"
        self.owner = "tower"

    @classmethod
    def from_spec(cls, spec: Spec, *, environ: dict[str, str]) -> FlyDriver:
        fly = spec.deploy.fly
        token = environ.get(fly.token_env, "")
        if not token:
            raise DriverError(
                f"${fly.token_env} is not set; the fly driver needs a Fly API token",
                hint=f"export {fly.token_env}=$(fly tokens create deploy -a {fly.app or '<app>'})",
            )
        app = fly.app or (
            spec.environments[spec.environment].fly_app
            if spec.environment and spec.environment in spec.environments
            else ""
        )
        return cls(
            fly.model_copy(update={"app": app}),
            token=token,
            port=fly.internal_port or spec.service.port,
            readiness=spec.health.readiness,
            cpus=spec.service.cpus,
            memory_mb=max(256, spec.service.memory // (1024 * 1024)),
            cpu_kind=spec.service.cpu_kind.value,
            public_url=spec.url,
        )

    @contextmanager
    def leased(self, machine_id: str) -> Iterator[str]:
        nonce = self.api.acquire_lease(machine_id, self.spec.lease_ttl, "tower deploy")
        try:
            yield nonce
        finally:
            with suppress(DriverError):
                self.api.release_lease(machine_id, nonce)

    def _machines(self, release_id: str | None = None) -> list[dict[str, Any]]:
        found = []
        for machine in self.api.list():
            if machine.get("state") in GONE:
                continue
            tag = (machine.get("config") or {}).get("metadata", {}).get(RELEASE_KEY)
            if tag and (release_id is None or tag == release_id):
                found.append(machine)
        return found

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        if not (release.image or self.spec.image):
            raise DriverError("no image to deploy", hint="pass --image or set [deploy.fly] image")
        config = machine_config(
            self.spec,
            release,
            port=self.port,
            readiness=self.readiness,
            cpus=self.cpus,
            memory_mb=self.memory_mb,
            cpu_kind=self.cpu_kind,
        )
        created = []
        for index in range(count):
            body: dict[str, Any] = {
                "name": f"{release.id}-{index}-{int(time.time() * 1000) % 100000}",
                "config": config,
                "skip_service_registration": True,
            }
            if self.spec.region:
                body["region"] = self.spec.region
            machine = self.api.create(body)
            created.append(machine)
        for machine in created:
            self.api.wait(
                machine["id"], "started", self.spec.wait_timeout, machine.get("instance_id", "")
            )
        return [_instance(m) for m in created]

    def instances(self, release_id: str | None = None) -> list[Instance]:
        return [_instance(m) for m in self._machines(release_id)]

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        machine = self.api.get(instance.id)
        state = machine.get("state", "")
        if state in GONE or state == "failed":
            return Probe(False, f"machine {instance.id} is {state}", fatal=True)
        if state != "started":
            return Probe(False, f"machine {instance.id} is {state}")
        checks = machine.get("checks") or []
        failing = [c for c in checks if c.get("status") != "passing"]
        if failing:
            shown = ", ".join(f"{c.get('name')} {c.get('status')}" for c in failing)
            return Probe(False, f"Fly checks: {shown}")
        return Probe(True, f"started, {len(checks)} check(s) passing")

    @contextmanager
    def all_leased(self, machine_ids: list[str]) -> Iterator[dict[str, str]]:
        """Leases on every machine a change touches, taken before anything changes."""
        nonces: dict[str, str] = {}
        try:
            for machine_id in machine_ids:
                nonces[machine_id] = self.api.acquire_lease(
                    machine_id, self.spec.lease_ttl, "tower deploy"
                )
            yield nonces
        finally:
            for machine_id, nonce in nonces.items():
                with suppress(DriverError):
                    self.api.release_lease(machine_id, nonce)

    def route(self, weights: dict[str, float]) -> dict[str, float] | None:
        """Register (uncordon) the machines that carry traffic, then cordon the rest.

        Every lease is taken first, so a machine leased by someone else stops the
        change before any machine moved.
        """
        everything = self._machines()
        releases = list(weights)
        if not releases:
            with self.all_leased([m["id"] for m in everything]) as nonces:
                for machine_id, nonce in nonces.items():
                    self.api.cordon(machine_id, nonce)
            return None
        new, old = releases[0], (releases[1] if len(releases) > 1 else None)
        new_machines = [m for m in everything if _release_of(m) == new]
        old_machines = [m for m in everything if old and _release_of(m) == old]
        k_new, k_old = split(weights[new], len(new_machines), len(old_machines))
        register = [m["id"] for m in new_machines[:k_new] + old_machines[:k_old]]
        cordon = [m["id"] for m in everything if m["id"] not in set(register)]
        with self.all_leased(register + cordon) as nonces:
            for machine_id in register:
                self.api.uncordon(machine_id, nonces[machine_id])
            for machine_id in cordon:
                self.api.cordon(machine_id, nonces[machine_id])
        effective = {new: k_new / (k_new + k_old)} if k_new + k_old else {new: 0.0}
        if old is not None and k_old:
            effective[old] = k_old / (k_new + k_old)
        return effective

    def rollback_to(self, release_id: str) -> None:
        """All traffic back on ``release_id``, doing what can be done.

        A machine whose lease someone else holds is left as it is, as long as
        at least one machine of the release is registered.
        """
        everything = self._machines()
        back = [m["id"] for m in everything if _release_of(m) == release_id]
        if not back:
            raise DriverError(f"no Fly machine of release {release_id} is left to roll back to")
        skipped: list[str] = []
        registered = 0
        for machine_id in back:
            try:
                with self.leased(machine_id) as nonce:
                    self.api.uncordon(machine_id, nonce)
                registered += 1
            except LeaseHeld as exc:
                skipped.append(exc.message)
        if not registered:
            raise DriverError("could not register any machine again: " + "; ".join(skipped))
        for machine in everything:
            if machine["id"] in back:
                continue
            try:
                with self.leased(machine["id"]) as nonce:
                    self.api.cordon(machine["id"], nonce)
            except LeaseHeld as exc:
                skipped.append(exc.message)

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
        machines = self._machines(release_id)
        if ids:
            machines = [m for m in machines if m["id"] in ids]
        for machine in machines[: count or len(machines)]:
            with self.leased(machine["id"]) as nonce:
                self.api.cordon(machine["id"], nonce)
                self.api.stop(machine["id"], nonce, timeout=math.ceil(drain))
                self.api.wait(
                    machine["id"], "stopped", self.spec.wait_timeout, machine.get("instance_id", "")
                )
                self.api.destroy(machine["id"], nonce)

    def public_url(self) -> str:
        return self.url

    def close(self) -> None:
        self.api.close()


def _release_of(machine: dict[str, Any]) -> str:
    return str(((machine.get("config") or {}).get("metadata") or {}).get(RELEASE_KEY, ""))


def _instance(machine: dict[str, Any]) -> Instance:
    config = machine.get("config") or {}
    metadata = config.get("metadata") or {}
    state = str(machine.get("state", ""))
    return Instance(
        id=str(machine["id"]),
        release=str(metadata.get(RELEASE_KEY, "")),
        version=str(metadata.get("tower_version", "")),
        state="running" if state == "started" else state,
        healthy=all(c.get("status") == "passing" for c in machine.get("checks") or []),
        address=str(machine.get("private_ip", "")),
        detail={"region": machine.get("region", ""), "instance_id": machine.get("instance_id", "")},
    )
