"""The fly driver: the Fly Machines REST API, used the way flyctl uses it.

A release is a set of new Machines cloned from the config of the Machines that
serve now (services and their checks, mounts, processes, metadata, stop config,
restart, autostop/autostart, statics, guest, region), changing only the image,
the env and tower's metadata. They are created with ``skip_service_registration``
(Fly's proxy sends them nothing), waited on until ``started``, and pass health
only when every expected Fly check has reported and passes (flyctl's rule; the
flaps compatibility checks are ignored), plus tower's own probe through the
private address where that network is reachable.

Traffic moves by ``uncordon``/``cordon``. Fly's proxy balances across
registered Machines by load and region, so a weight becomes a count of
Machines, and capacity is kept: old Machines stay registered until every new
one is, and each change waits for the proxy to see it (flyctl's
``waitBeforeCordon``/``waitBeforeStop``). Every change holds the Machine's
lease; every call retries 429/408/5xx, honouring ``Retry-After``.
"""

from __future__ import annotations

import copy
import email.utils
import ipaddress
import math
import shlex
import time
import tomllib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from controltower.clock import system_clock
from controltower.deploy.drivers.base import Driver, Instance, Probe, ReleaseInfo, TargetMetrics
from controltower.exceptions import DriverError
from controltower.spec import Spec
from controltower.spec.deploy import FlyDriverSpec
from controltower.typing import Clock

NONCE_HEADER = "fly-machine-lease-nonce"
RELEASE_KEY = "tower_release"
VERSION_KEY = "tower_version"
GROUP_KEY = "fly_process_group"
RELEASE_GROUP = "fly_app_release_command"
COMPAT_PREFIX = "bg_deployments_compat"
GONE = ("destroyed", "destroying")
RETRIED = (408, 429, 500, 502, 503, 504)
NOTE = "Fly balances by load and region"


class LeaseHeld(DriverError):
    """Another process (flyctl, another deploy) holds a machine's lease."""


class WaitTimeout(Exception):
    """The wait endpoint answered 408: the state was not reached within its timeout."""


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    with suppress(ValueError):
        return max(0.0, float(value))
    with suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - system_clock.time())
    return None


class FlyAPI:
    """A client of the documented endpoints tower uses; one layer does the retries."""

    def __init__(
        self,
        base_url: str,
        token: str,
        app: str,
        *,
        timeout: float = 30.0,
        clock: Clock = system_clock,
        retry_for: float = 120.0,
    ) -> None:
        self.app = app
        self.clock = clock
        self.retry_for = retry_for
        self.retries = 0
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
        root: str = "machines",
    ) -> Any:
        headers = {NONCE_HEADER: nonce} if nonce else {}
        url = f"/apps/{self.app}/{root}{path}"
        deadline = self.clock.monotonic() + self.retry_for
        attempt = 0
        while True:
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
                delay = min(8.0, 0.5 * 2**attempt)
                if method == "GET" and self.clock.monotonic() + delay < deadline:
                    attempt += 1
                    self.retries += 1
                    self.clock.sleep(delay)
                    continue
                raise DriverError(
                    f"Fly Machines API {method} {url}: {type(exc).__name__}: {exc}"
                ) from None
            status = response.status_code
            if status == 408 and path.endswith("/wait"):
                raise WaitTimeout(path)
            if status in RETRIED:
                delay = retry_after(response)
                if delay is None:
                    delay = min(8.0, 0.5 * 2**attempt)
                if self.clock.monotonic() + delay < deadline:
                    attempt += 1
                    self.retries += 1
                    self.clock.sleep(delay)
                    continue
            break
        if status not in ok:
            try:
                body = response.json()
                error = body.get("error") or body.get("message") or response.text
            except (ValueError, AttributeError):
                error = response.text
            hint = "check the token in $FLY_API_TOKEN" if status == 401 else None
            raise DriverError(
                f"Fly Machines API {method} {url}: {status} {error}".strip(), hint=hint
            )
        if not response.content:
            return None
        return response.json()

    def list(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._call("GET", "") or []
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

    def set_metadata(self, machine_id: str, key: str, value: str, nonce: str = "") -> None:
        self._call(
            "POST",
            f"/{machine_id}/metadata/{key}",
            json={"value": value},
            nonce=nonce,
            ok=(200, 204),
        )

    def wait(self, machine_id: str, state: str, timeout: float, instance_id: str = "") -> None:
        """Wait until the machine is in ``state``; the API waits at most 60 s per call."""
        deadline = self.clock.monotonic() + timeout
        while True:
            left = deadline - self.clock.monotonic()
            params: dict[str, Any] = {"state": state, "timeout": max(1, min(60, math.ceil(left)))}
            if instance_id:
                params["instance_id"] = instance_id
            try:
                self._call(
                    "GET", f"/{machine_id}/wait", params=params, timeout=params["timeout"] + 10
                )
                return
            except WaitTimeout:
                if self.clock.monotonic() >= deadline - 0.5:
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
        nonce = ((data or {}).get("data") or {}).get("nonce", "")
        if not nonce:
            raise DriverError(f"Fly Machines API gave no lease nonce for machine {machine_id}")
        return str(nonce)

    def release_lease(self, machine_id: str, nonce: str) -> None:
        self._call("DELETE", f"/{machine_id}/lease", nonce=nonce, ok=(200, 204))

    def cordon(self, machine_id: str, nonce: str = "") -> None:
        self._call("POST", f"/{machine_id}/cordon", nonce=nonce)

    def uncordon(self, machine_id: str, nonce: str = "") -> None:
        self._call("POST", f"/{machine_id}/uncordon", nonce=nonce)

    def stop(
        self, machine_id: str, nonce: str = "", timeout: float | None = None, signal: str = ""
    ) -> None:
        body: dict[str, Any] = {}
        if timeout:
            body["timeout"] = f"{int(timeout)}s"
        if signal:
            body["signal"] = signal
        self._call("POST", f"/{machine_id}/stop", json=body or None, nonce=nonce)

    def destroy(self, machine_id: str, nonce: str = "", kill: bool = False) -> None:
        params = {"force": "true"} if kill else None
        self._call("DELETE", f"/{machine_id}", params=params, nonce=nonce)

    def create_volume(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self._call("POST", "", json=body, root="volumes")
        return data

    def delete_volume(self, volume_id: str) -> None:
        self._call("DELETE", f"/{volume_id}", root="volumes")

    def close(self) -> None:
        self.http.close()


# ---- pure builders ---------------------------------------------------------------------


def metadata_of(machine: dict[str, Any]) -> dict[str, str]:
    """A machine's metadata; the API answers ``"metadata": null`` when it has none."""
    config = machine.get("config") or {}
    return dict(config.get("metadata") or {})


def group_of(machine: dict[str, Any]) -> str:
    config = machine.get("config") or {}
    group = metadata_of(machine).get(GROUP_KEY, "")
    if not group and config.get("services"):
        return "app"
    return str(group)


def release_of(machine: dict[str, Any]) -> str:
    return str(metadata_of(machine).get(RELEASE_KEY, ""))


def health_check(readiness: str) -> dict[str, Any]:
    """Tower's readiness check as a service check: failing, it takes the machine out of the pool."""
    return {
        "type": "http",
        "interval": "10s",
        "timeout": "2s",
        "grace_period": "5s",
        "method": "GET",
        "path": readiness,
    }


def with_health_check(config: dict[str, Any], port: int, readiness: str) -> dict[str, Any]:
    """The config with a service check on the service at ``port`` when it has none."""
    for service in config.get("services") or []:
        if service.get("internal_port") == port and not service.get("checks"):
            service["checks"] = [health_check(readiness)]
    return config


def clone_config(template: dict[str, Any], release: ReleaseInfo, image: str) -> dict[str, Any]:
    """A running machine's config for ``release``: only image, env and tower metadata change."""
    config = copy.deepcopy(template)
    config["image"] = image
    config["env"] = {**(config.get("env") or {}), **release.env}
    config["metadata"] = {
        **(config.get("metadata") or {}),
        RELEASE_KEY: release.id,
        VERSION_KEY: release.version,
    }
    return config


def fresh_config(
    release: ReleaseInfo,
    *,
    image: str,
    group: str,
    port: int,
    readiness: str,
    cpus: int,
    memory_mb: int,
    cpu_kind: str,
) -> dict[str, Any]:
    """The config of a first machine on an app where nothing runs: pure, tested by equality."""
    return {
        "image": image,
        "env": dict(release.env),
        "guest": {"cpu_kind": cpu_kind, "cpus": cpus, "memory_mb": memory_mb},
        "metadata": {
            GROUP_KEY: group,
            "fly_platform_version": "v2",
            RELEASE_KEY: release.id,
            VERSION_KEY: release.version,
        },
        "services": [
            {
                "protocol": "tcp",
                "internal_port": port,
                "ports": [
                    {"port": 80, "handlers": ["http"], "force_https": True},
                    {"port": 443, "handlers": ["tls", "http"]},
                ],
                "checks": [health_check(readiness)],
            }
        ],
        "restart": {"policy": "on-failure"},
    }


def expected_checks(config: dict[str, Any]) -> int:
    """How many checks a machine of this config reports once every one has run."""
    top = len(config.get("checks") or {})
    return top + sum(len(s.get("checks") or []) for s in config.get("services") or [])


def canary_count(weight: float, new: int, old: int) -> int:
    """New machines to register beside ``old`` registered ones so their share comes near ``weight``."""
    if new == 0:
        return 0
    if weight >= 1.0 or old == 0:
        return new
    if weight <= 0.0:
        return 0
    return max(1, min(new, round(weight * old / (1.0 - weight))))


def pick_template(
    templates: list[dict[str, Any]], wanted: Counter[str], have: Counter[str]
) -> dict[str, Any]:
    """The machine to copy next: one in the region that most lacks machines of the release."""
    return max(
        templates,
        key=lambda m: wanted[str(m.get("region") or "")] - have[str(m.get("region") or "")],
    )


def by_region(
    candidates: list[dict[str, Any]], count: int, replaced: Counter[str]
) -> list[dict[str, Any]]:
    """``count`` of ``candidates`` to stop, first in the regions where replacements were added."""
    chosen: list[dict[str, Any]] = []
    left = list(candidates)
    extra = Counter(replaced)
    for _ in range(min(count, len(left))):
        pick = max(left, key=lambda m: extra[str(m.get("region") or "")])
        extra[str(pick.get("region") or "")] -= 1
        chosen.append(pick)
        left.remove(pick)
    return chosen


def read_fly_toml(path: Path) -> dict[str, Any]:
    """fly.toml as data ({} when missing); a broken file is an error naming it."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DriverError(f"{path}: not valid TOML: {exc}") from None


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
        fly_toml: dict[str, Any] | None = None,
        region: str = "",
        clock: Clock = system_clock,
    ) -> None:
        if not spec.app:
            raise DriverError("[deploy.fly] app is empty", hint='set app = "your-fly-app"')
        self.spec = spec
        self.clock = clock
        self.api = FlyAPI(spec.api_url, token, spec.app, clock=clock)
        self.prometheus = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=15.0)
        self.port = port
        self.readiness = readiness
        self.cpus, self.memory_mb, self.cpu_kind = cpus, memory_mb, cpu_kind
        self.url = public_url or f"https://{spec.app}.fly.dev"
        toml = fly_toml or {}
        deploy = toml.get("deploy") or {}
        self.region = spec.region or str(toml.get("primary_region") or "") or region
        self.release_command = spec.release_command or str(deploy.get("release_command") or "")
        self.owner = "tower"
        self.note = ""
        self._critical: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._private: bool | None = None
        self._quiet: set[str] = set()

    @classmethod
    def from_spec(
        cls, spec: Spec, *, environ: dict[str, str], root: Path | None = None
    ) -> FlyDriver:
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
        toml = read_fly_toml((root or Path(".")) / spec.service.fly_toml) if root else {}
        return cls(
            fly.model_copy(update={"app": app}),
            token=token,
            port=fly.internal_port or spec.service.port,
            readiness=spec.health.readiness,
            cpus=spec.service.cpus,
            memory_mb=spec.service.memory // (1024 * 1024),
            cpu_kind=spec.service.cpu_kind.value,
            public_url=spec.url,
            fly_toml=toml,
            region=spec.service.region,
        )

    # ---- machines ----------------------------------------------------------------------

    def _serving(self) -> list[dict[str, Any]]:
        """Machines of the deployed process group (not other groups, not release commands)."""
        return [
            m
            for m in self.api.list()
            if m.get("state") not in GONE and group_of(m) == self.spec.process_group
        ]

    def _machines(self, release_id: str | None = None) -> list[dict[str, Any]]:
        found = []
        for machine in self._serving():
            tag = release_of(machine)
            if tag and (release_id is None or tag == release_id):
                found.append(machine)
        return sorted(found, key=lambda m: str(m["id"]))

    def instances(self, release_id: str | None = None) -> list[Instance]:
        return [_instance(m) for m in self._machines(release_id)]

    def adopt(self) -> str | None:
        """Tag the machines that serve without a tower release (a `fly deploy`) as one release."""
        untagged = [m for m in self._serving() if not release_of(m) and m.get("state") == "started"]
        if not untagged:
            return None
        key = "fly-" + str(untagged[0].get("instance_id") or untagged[0]["id"])[:12].lower()
        for machine in untagged:
            with self.leased(machine["id"]) as nonce:
                self.api.set_metadata(machine["id"], RELEASE_KEY, key, nonce)
                self.api.set_metadata(machine["id"], VERSION_KEY, "before tower", nonce)
        return key

    def _templates(self, release_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(machines to copy, the release's own machines).

        New machines copy the largest release that runs besides this one (its
        own machines when nothing else runs).
        """
        serving = [m for m in self._serving() if m.get("state") not in ("failed",)]
        own = sorted(
            (m for m in serving if release_of(m) == release_id), key=lambda m: str(m["id"])
        )
        others = [m for m in serving if release_of(m) != release_id]
        if not others:
            return own, own
        counts = Counter(release_of(m) for m in others)
        chosen, _ = counts.most_common(1)[0]
        templates = sorted(
            (m for m in others if release_of(m) == chosen), key=lambda m: str(m["id"])
        )
        return templates, own

    @contextmanager
    def leased(self, machine_id: str) -> Iterator[str]:
        nonce = self.api.acquire_lease(machine_id, self.spec.lease_ttl, "tower deploy")
        try:
            yield nonce
        finally:
            with suppress(DriverError):
                self.api.release_lease(machine_id, nonce)

    @contextmanager
    def all_leased(
        self, machine_ids: Sequence[str], *, hold: float = 0.0
    ) -> Iterator[dict[str, str]]:
        """Leases on every machine a change touches, taken before anything changes.

        ``hold``: seconds the change may take; the lease lasts at least that long.
        """
        ttl = max(self.spec.lease_ttl, math.ceil(hold) + 30)
        nonces: dict[str, str] = {}
        try:
            for machine_id in machine_ids:
                nonces[machine_id] = self.api.acquire_lease(machine_id, ttl, "tower deploy")
            yield nonces
        finally:
            for machine_id, nonce in nonces.items():
                with suppress(DriverError):
                    self.api.release_lease(machine_id, nonce)

    # ---- start -------------------------------------------------------------------------

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        image = release.image or self.spec.image
        if not image:
            raise DriverError("no image to deploy", hint="pass --image or set [deploy.fly] image")
        templates, mine = self._templates(release.id)
        wanted = Counter(str(m.get("region") or "") for m in [*templates, *mine])
        have = Counter(str(m.get("region") or "") for m in mine)
        if not templates and not self.region:
            raise DriverError(
                "no region for the first machine of "
                f"{self.spec.app}: nothing runs to copy one from",
                hint="set primary_region in fly.toml or [deploy.fly] region",
            )
        if self.release_command and not mine:
            base = templates[0]["config"] if templates else None
            self.run_release_command(release, image, base)
        created: list[dict[str, Any]] = []
        volumes: list[str] = []
        try:
            for index in range(count):
                number = len(mine) + index
                if templates:
                    template = pick_template(templates, wanted, have)
                    have[str(template.get("region") or "")] += 1
                    config = clone_config(template.get("config") or {}, release, image)
                    region = str(template.get("region") or self.region)
                else:
                    config = fresh_config(
                        release,
                        image=image,
                        group=self.spec.process_group,
                        port=self.port,
                        readiness=self.readiness,
                        cpus=self.cpus,
                        memory_mb=self.memory_mb,
                        cpu_kind=self.cpu_kind,
                    )
                    region = self.region
                config = with_health_check(config, self.port, self.readiness)
                mounts = []
                for mount in config.get("mounts") or []:
                    volume = self._volume_for(mount, region)
                    volumes.append(volume["id"])
                    mounts.append({**mount, "volume": volume["id"]})
                if mounts:
                    config["mounts"] = mounts
                body: dict[str, Any] = {
                    "name": f"{self.spec.process_group}-{release.id}-{number}",
                    "config": config,
                    "region": region,
                    "skip_service_registration": True,
                }
                machine = self.api.create(body)
                created.append(machine)
                self._quiet.add(str(machine["id"]))
            for machine in created:
                self.api.wait(
                    machine["id"],
                    "started",
                    self.spec.wait_timeout,
                    str(machine.get("instance_id", "")),
                )
        except DriverError:
            self._discard(created, volumes)
            raise
        return [_instance(m) for m in created]

    def _volume_for(self, mount: dict[str, Any], region: str) -> dict[str, Any]:
        """A volume for a new machine: empty like `fly scale count` makes, or forked."""
        body: dict[str, Any] = {
            "name": mount.get("name") or "data",
            "region": region,
            "size_gb": int(mount.get("size_gb") or 1),
        }
        if self.spec.volumes == "fork" and mount.get("volume"):
            body["source_volume_id"] = mount["volume"]
        if mount.get("encrypted") is False:
            body["encrypted"] = False
        return self.api.create_volume(body)

    def _discard(self, machines: list[dict[str, Any]], volumes: list[str]) -> None:
        """Destroy what a failed start created, so nothing is left behind."""
        for machine in machines:
            with suppress(DriverError):
                self.api.destroy(machine["id"], kill=True)
        for volume in volumes:
            with suppress(DriverError):
                self.api.delete_volume(volume)

    def run_release_command(
        self, release: ReleaseInfo, image: str, base: dict[str, Any] | None
    ) -> None:
        """fly.toml's ``release_command`` in a one-off machine; a non-zero exit aborts."""
        base = base or {}
        config: dict[str, Any] = {
            "image": image,
            "env": {**(base.get("env") or {}), **release.env, "RELEASE_COMMAND": "1"},
            "guest": base.get("guest")
            or {"cpu_kind": "shared", "cpus": 1, "memory_mb": max(256, self.memory_mb)},
            "init": {"cmd": shlex.split(self.release_command)},
            "restart": {"policy": "no"},
            "auto_destroy": True,
            "metadata": {GROUP_KEY: RELEASE_GROUP, "fly_platform_version": "v2"},
        }
        body: dict[str, Any] = {"config": config, "name": f"release-{release.id}"}
        if self.region:
            body["region"] = self.region
        machine = self.api.create(body)
        machine_id = str(machine["id"])
        timeout = self.spec.release_command_timeout
        try:
            # no wait for "started": a quick command may have exited before that call
            self.api.wait(machine_id, "stopped", timeout, str(machine.get("instance_id", "")))
        except DriverError as exc:
            with suppress(DriverError):
                self.api.destroy(machine_id, kill=True)
            raise DriverError(
                f"release_command {self.release_command!r} did not finish: {exc.message}",
                hint=f"see `fly logs -a {self.spec.app} -i {machine_id}`",
            ) from None
        code = _exit_code(self.api.get(machine_id))
        if code != 0:
            raise DriverError(
                f"release_command {self.release_command!r} exited {code}; no traffic was moved",
                hint=f"see `fly logs -a {self.spec.app} -i {machine_id}`",
            )

    # ---- health ------------------------------------------------------------------------

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        machine = self.api.get(instance.id)
        state = str(machine.get("state", ""))
        if state in GONE or state == "failed":
            return Probe(False, f"machine {instance.id} is {state}", fatal=True)
        if state != "started":
            return Probe(False, f"machine {instance.id} is {state}")
        config = machine.get("config") or {}
        wanted = expected_checks(config)
        checks = [
            c
            for c in machine.get("checks") or []
            if not str(c.get("name", "")).startswith(COMPAT_PREFIX)
        ]
        if wanted == 0:
            return self._own_probe(machine, path, timeout, "no Fly checks configured")
        if len(checks) < wanted:
            return Probe(
                False, f"Fly checks: {len(checks)} of {wanted} reported (none has run yet)"
            )
        critical = [c for c in checks if c.get("status") == "critical"]
        if checks and len(critical) == len(checks):
            runs = tuple(str(c.get("updated_at", "")) for c in critical)
            streak, last = self._critical.get(instance.id, (0, ()))
            if runs != last:
                streak += 1
            self._critical[instance.id] = (streak, runs)
            shown = ", ".join(f"{c.get('name')} critical" for c in critical)
            output = str(critical[0].get("output") or "").strip()[:200]
            detail = f"Fly checks: {shown}" + (f" ({output})" if output else "")
            if streak >= self.spec.critical_limit:
                return Probe(
                    False,
                    f"{detail}; every check critical {streak} runs in a row",
                    fatal=True,
                )
            return Probe(False, detail)
        self._critical.pop(instance.id, None)
        failing = [c for c in checks if c.get("status") != "passing"]
        if failing:
            shown = ", ".join(f"{c.get('name')} {c.get('status')}" for c in failing)
            return Probe(False, f"Fly checks: {shown}")
        return self._own_probe(machine, path, timeout, f"{len(checks)} Fly check(s) passing")

    def _own_probe(self, machine: dict[str, Any], path: str, timeout: float, checks: str) -> Probe:
        """Tower's readiness probe through the private network, when it is reachable from here."""
        address = str(machine.get("private_ip") or "")
        if not address or self._private is False:
            return Probe(True, f"started, {checks}")
        try:
            host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        except ValueError:
            return Probe(True, f"started, {checks}")
        url = f"http://{host}:{self.port}{path}"
        try:
            response = httpx.get(url, timeout=httpx.Timeout(timeout, connect=1.0))
        except (httpx.ConnectError, httpx.ConnectTimeout, OSError) as exc:
            if self._private is None:
                self._private = False
                return Probe(
                    True,
                    f"started, {checks}; private network not reachable from here "
                    f"({type(exc).__name__}), Fly's checks decide",
                )
            return Probe(False, f"{url}: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Probe(False, f"{url}: {type(exc).__name__}")
        self._private = True
        if response.status_code >= 400:
            return Probe(False, f"{checks}, but {url} answered {response.status_code}")
        return Probe(True, f"started, {checks}, {url} answered {response.status_code}")

    # ---- traffic -----------------------------------------------------------------------

    def _settle(self) -> None:
        """Give Fly's proxy time to see a registration change (flyctl waits 10 s)."""
        self.clock.sleep(self.spec.propagation)

    def _set(self, register: Sequence[str], cordon: Sequence[str]) -> None:
        """Uncordon ``register``, let the proxy see them, then cordon ``cordon``.

        Every lease is taken before anything changes and held to the end. There
        is a wait after registering and another after cordoning (flyctl's
        ``waitBeforeCordon`` and ``waitBeforeStop``), so that when ``route``
        returns the proxy sends traffic where it says.
        """
        with self.all_leased([*register, *cordon], hold=2 * self.spec.propagation) as nonces:
            for machine_id in register:
                self.api.uncordon(machine_id, nonces[machine_id])
                self._quiet.discard(machine_id)
            if register:
                self._settle()
            for machine_id in cordon:
                self.api.cordon(machine_id, nonces[machine_id])
            if cordon:
                self._settle()
                self._quiet.update(cordon)

    def route(self, weights: dict[str, float]) -> dict[str, float] | None:
        """Register new machines, keeping every old one registered until the new take all.

        A weight below 1 registers the count of new machines that comes closest
        to it beside all the old ones; 1 registers every new machine, waits for
        the proxy, then cordons the rest.
        """
        everything = self._serving()
        releases = list(weights)
        if not releases:
            self._set([], [str(m["id"]) for m in everything])
            self.note = "every machine cordoned"
            return None
        new, old = releases[0], (releases[1] if len(releases) > 1 else None)
        fresh = sorted(
            (m for m in everything if release_of(m) == new and m.get("state") == "started"),
            key=lambda m: str(m["id"]),
        )
        if not fresh:
            raise DriverError(f"no started Fly machine of release {new} to send traffic to")
        weight = weights[new]
        if weight >= 1.0 or old is None:
            register = [str(m["id"]) for m in fresh]
            cordon = [str(m["id"]) for m in everything if str(m["id"]) not in set(register)]
            self._set(register, cordon)
            self.note = f"{len(register)} of {len(register)} machines run {new}"
            return {new: 1.0}
        stable = [m for m in everything if release_of(m) == old and m.get("state") == "started"]
        count = canary_count(weight, len(fresh), len(stable))
        register = [str(m["id"]) for m in fresh[:count]] + [str(m["id"]) for m in stable]
        cordon = [str(m["id"]) for m in everything if str(m["id"]) not in set(register)]
        self._set(register, cordon)
        total = count + len(stable)
        self.note = f"{count} of {total} machines run {new} ({NOTE})"
        effective = {new: round(count / total, 6)}
        if stable:
            effective[old] = round(len(stable) / total, 6)
        return effective

    def route_note(self) -> str:
        return self.note

    def rollback_to(self, release_id: str) -> None:
        """All traffic back on ``release_id``, doing what can be done.

        A machine whose lease someone else holds is left as it is, as long as
        at least one machine of the release is registered.
        """
        everything = self._serving()
        back = [str(m["id"]) for m in everything if release_of(m) == release_id]
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
        rest = [str(m["id"]) for m in everything if str(m["id"]) not in back]
        self._settle()
        cordoned = []
        for machine_id in rest:
            try:
                with self.leased(machine_id) as nonce:
                    self.api.cordon(machine_id, nonce)
                cordoned.append(machine_id)
            except LeaseHeld as exc:
                skipped.append(exc.message)
        if cordoned:
            self._settle()
            self._quiet.update(cordoned)

    def stop(
        self,
        release_id: str,
        *,
        count: int = 0,
        ids: Sequence[str] = (),
        drain: float = 30.0,
        after: float = 0.0,
    ) -> None:
        """Cordon, wait for the proxy to forget them, stop (drain), wait, destroy."""
        if after > 0:
            return
        machines = self._machines(release_id)
        if ids:
            machines = [m for m in machines if m["id"] in ids]
        if count and count < len(machines):
            replaced = Counter(
                str(m.get("region") or "")
                for m in self._machines()
                if release_of(m) != release_id and m.get("state") == "started"
            )
            chosen = by_region(machines, count, replaced)
        else:
            chosen = machines[: count or len(machines)]
        if not chosen:
            return
        chosen_ids = [str(m["id"]) for m in chosen]
        hold = self.spec.propagation + drain + max(self.spec.wait_timeout, drain + 5)
        with self.all_leased(chosen_ids, hold=hold) as nonces:
            for machine_id in chosen_ids:
                self.api.cordon(machine_id, nonces[machine_id])
            if not set(chosen_ids) <= self._quiet:
                self._settle()
            for machine in chosen:
                signal = str(
                    ((machine.get("config") or {}).get("stop_config") or {}).get("signal") or ""
                )
                with suppress(DriverError):
                    self.api.stop(
                        machine["id"],
                        nonces[machine["id"]],
                        timeout=math.ceil(drain),
                        signal=signal,
                    )
            for machine in chosen:
                with suppress(DriverError):
                    self.api.wait(
                        machine["id"],
                        "stopped",
                        max(self.spec.wait_timeout, drain + 5),
                        str(machine.get("instance_id", "")),
                    )
            for machine in chosen:
                self.api.destroy(machine["id"], nonces[machine["id"]], kill=True)
                self._quiet.discard(str(machine["id"]))

    # ---- analysis ----------------------------------------------------------------------

    def metrics(self, release_id: str, window: float) -> TargetMetrics | None:
        """Requests, errors and latency of the release's machines from Fly's managed Prometheus."""
        base = self.spec.prometheus_url or (
            f"https://api.fly.io/prometheus/{self.spec.org}" if self.spec.org else ""
        )
        if not base:
            return None
        ids = [str(m["id"]) for m in self._machines(release_id)]
        if not ids:
            return None
        seconds = max(1, math.ceil(window))
        labels = f'app="{self.spec.app}",instance=~"{"|".join(ids)}"'
        errors_only = labels + ',status=~"5.."'
        total = self._query(
            base, f"sum(increase(fly_app_http_responses_count{{{labels}}}[{seconds}s]))"
        )
        errors = self._query(
            base, f"sum(increase(fly_app_http_responses_count{{{errors_only}}}[{seconds}s]))"
        )
        bucket = f"fly_app_http_response_time_seconds_bucket{{{labels}}}[{seconds}s]"
        quantiles = {
            name: self._query(base, f"histogram_quantile({q}, sum by (le) (rate({bucket})))")
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        }
        requests = round(total or 0.0)
        failed = round(errors or 0.0)
        return TargetMetrics(
            requests=requests,
            errors=failed,
            error_rate=failed / requests if requests else 0.0,
            p50=quantiles["p50"],
            p95=quantiles["p95"],
            p99=quantiles["p99"],
            source=f"Fly managed Prometheus ({base}), instances of {release_id}",
        )

    def _query(self, base: str, query: str) -> float | None:
        try:
            response = self.prometheus.get(
                base.rstrip("/") + "/api/v1/query", params={"query": query}
            )
        except httpx.HTTPError as exc:
            raise DriverError(f"Fly Prometheus at {base}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise DriverError(f"Fly Prometheus at {base}: {response.status_code} for {query}")
        result = (response.json().get("data") or {}).get("result") or []
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def public_url(self) -> str:
        return self.url

    def close(self) -> None:
        self.api.close()
        self.prometheus.close()


def _exit_code(machine: dict[str, Any]) -> int:
    """The exit code in a machine's newest ``exit`` event (-1 when none says)."""
    for event in machine.get("events") or []:
        if event.get("type") != "exit":
            continue
        request = event.get("request") or {}
        exit_event = (request.get("MonitorEvent") or {}).get("exit_event") or request.get(
            "exit_event"
        )
        if exit_event is not None:
            return int(exit_event.get("exit_code") or 0)
    return -1


def _instance(machine: dict[str, Any]) -> Instance:
    metadata = metadata_of(machine)
    state = str(machine.get("state", ""))
    checks = [
        c
        for c in machine.get("checks") or []
        if not str(c.get("name", "")).startswith(COMPAT_PREFIX)
    ]
    wanted = expected_checks(machine.get("config") or {})
    healthy = len(checks) >= wanted and all(c.get("status") == "passing" for c in checks)
    return Instance(
        id=str(machine["id"]),
        release=str(metadata.get(RELEASE_KEY, "")),
        version=str(metadata.get(VERSION_KEY, "")),
        state="running" if state == "started" else state,
        healthy=healthy if state == "started" else False,
        address=str(machine.get("private_ip", "")),
        detail={"region": machine.get("region", ""), "instance_id": machine.get("instance_id", "")},
    )
