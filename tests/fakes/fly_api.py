"""A local Fly.io: the Machines API, its proxy and its managed Prometheus, unkind first.

Every behaviour below names the document it comes from; docs/deploy.md ("Fly:
what the test fake reproduces") lists the same table. Sources:

[machines]  https://fly.io/docs/machines/api/machines-resource/
[working]   https://fly.io/docs/machines/api/working-with-machines-api/
[volumes]   https://fly.io/docs/machines/api/volumes-resource/
[limits]    Machines API rate limits, https://fly.io/docs/machines/api/working-with-machines-api/
            and https://community.fly.io/t/understanding-fly-io-api-rate-hard-limits/20636
            ("1 request, per second, per action ... burstable up to 3 ... except Get
            Machine: 5 req/s, burstable up to 10")
[types]     superfly/fly-go machine_types.go (``MachineCheckKind``, ``TopLevelChecks``,
            ``RemoveCompatChecks``, ``MachineMount``, ``IsReleaseCommandMachine``)
[bluegreen] superfly/flyctl internal/command/deploy/strategy_bluegreen.go
            ("without v.hcs.Total != 0, the first call ... will pass since 0 == 0";
            ``waitBeforeCordon``/``waitBeforeStop``: "let fly-proxy see/forget")
[release]   superfly/flyctl internal/command/deploy/machines_releasecommand.go
[metrics]   https://fly.io/docs/monitoring/metrics/ (``fly_app_http_responses_count``,
            ``fly_app_http_response_time_seconds``, label ``instance`` = Machine ID)
            and the Prometheus HTTP API ``/api/v1/query``

Behaviours (unkind ones first; none can be switched off, only timed):

1. Checks: a started Machine reports ``"checks": []`` for ``checks_empty`` seconds
   (no check has run yet) [bluegreen]; then one result per check every interval,
   the first ``warmup_runs`` of them ``critical`` while the app boots, then
   ``passing`` — or ``critical`` forever for an image containing ``bad``. Each
   result carries ``updated_at`` of the run that produced it.
2. ``kind``: a top-level check without ``kind`` is informational and never
   takes a Machine out of the proxy; ``kind = "readiness"`` and every
   ``services[].checks`` entry do [types]. Service checks are reported as
   ``servicecheck-NN-<type>-<port>``; beside them flaps reports a
   ``bg_deployments_compat_*`` check that says nothing about health (here:
   ``warning`` forever) [types: RemoveCompatChecks].
3. ``"metadata": null`` (and ``"checks": null`` in a config without checks)
   where the field is empty [machines].
4. Rate limits per action per Machine (per app for create): 1 req/s, burst 3;
   Get Machine 5 req/s, burst 10, and list at the same limit as Get (the
   sources name only Get); over it 429 with ``Retry-After`` [limits].
5. Leases: a change to a leased Machine without its nonce is 409, and so is
   taking a lease someone else holds [machines].
6. ``/wait`` waits at most ``max_wait`` seconds, then 408 [machines];
   ``instance_id`` is required to wait for ``stopped``.
7. Proxy propagation: ``uncordon``/``cordon`` (and registration at start)
   reach the proxy ``propagation`` seconds later [bluegreen].
8. Process groups: ``seed(..., group="worker")`` Machines have no services and
   belong to another ``fly_process_group``; release-command Machines carry
   ``fly_process_group = "fly_app_release_command"`` [types, release].
9. Volumes: one volume attaches to one Machine, in its own region; a second
   Machine naming it is refused [volumes].
10. Org limits: ``capacity`` live Machines at most; a create beyond is refused
    (422) [bluegreen: ``ErrOrgLimit``].
11. A release command Machine (``init.cmd``, ``restart: no``, ``auto_destroy``)
    exits with ``release_results[cmd]`` (default 0) after ``release_time``; the
    exit code is in its ``events`` [release, types].
12. The proxy: ``send()`` (or ``GET /_fake/proxy/...``) routes one request to a
    Machine in the pool (registered, started, no readiness/service check
    critical), recorded in ``routed``; an image containing ``err`` answers 500.
    Every change of the pool appends a ``Sample`` with the number of registered
    *healthy* Machines (every reported check passing) to ``samples``.
13. Managed Prometheus: ``GET /prometheus/<org>/api/v1/query`` answers the
    request counters and latency quantiles of the routed requests, labelled by
    ``instance`` (Machine ID) and ``status`` [metrics].
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.asgi import ThreadedApp

NONCE = "fly-machine-lease-nonce"
RELEASE_GROUP = "fly_app_release_command"


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", value.strip())
    if not match:
        return default
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


@dataclass
class Machine:
    id: str
    name: str
    region: str
    config: dict[str, Any]
    created: float
    instance_id: str = field(default_factory=lambda: secrets.token_hex(8).upper())
    registered: bool = False
    was_registered: bool = False
    registration_changed: float = 0.0
    stopped_at: float | None = None
    destroyed: bool = False
    lease: tuple[str, float, str] | None = None  # nonce, expires_at, owner
    exit_code: int | None = None


@dataclass(frozen=True)
class Routed:
    at: float
    machine: str | None
    status: int
    latency: float


@dataclass(frozen=True)
class Sample:
    at: float
    healthy: int
    pool: tuple[str, ...]


class Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class FakeFly(ThreadedApp):
    def __init__(
        self,
        token: str,
        *,
        app: str = "shop-prod",
        org: str = "personal",
        start_delay: float = 0.3,
        checks_empty: float = 2.0,
        check_interval: float | None = None,
        warmup_runs: int = 1,
        propagation: float = 0.5,
        max_wait: float = 60.0,
        rate: tuple[float, int] = (1.0, 3),
        get_rate: tuple[float, int] = (5.0, 10),
        release_time: float = 0.3,
        private_ip: Callable[[Machine], str] | None = None,
    ) -> None:
        self.token, self.app, self.org = token, app, org
        self.start_delay = start_delay
        self.checks_empty = checks_empty
        self.check_interval = check_interval
        self.warmup_runs = warmup_runs
        self.propagation = propagation
        self.max_wait = max_wait
        self.rate, self.get_rate = rate, get_rate
        self.release_time = release_time
        self.private_ip = private_ip
        self.release_results: dict[str, int] = {}
        self.capacity: int | None = None
        self.machines: dict[str, Machine] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self.changes: list[tuple[str, str, bool]] = []
        self.routed: list[Routed] = []
        self.samples: list[Sample] = []
        self.ever_registered: set[str] = set()
        self.lock = threading.RLock()
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._pool: tuple[str, ...] | None = None
        self._rr = 0
        self._stop = threading.Event()
        self.ticker: threading.Thread | None = None
        self.port = 0

    # ---- model -----------------------------------------------------------------------

    def state(self, m: Machine, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if m.destroyed:
            return "destroyed"
        if m.stopped_at is not None:
            return "stopped" if now - m.stopped_at > 0.15 else "stopping"
        age = now - m.created
        if age < self.start_delay / 2:
            return "created"
        if age < self.start_delay:
            return "starting"
        if self.is_release(m) and age >= self.start_delay + self.release_time:
            return "stopped"
        return "started"

    def is_release(self, m: Machine) -> bool:
        return (m.config.get("metadata") or {}).get("fly_process_group") == RELEASE_GROUP

    def expected_checks(self, m: Machine) -> list[tuple[str, dict[str, Any], bool]]:
        """(name, check, takes the machine out of the pool when critical)."""
        found: list[tuple[str, dict[str, Any], bool]] = []
        for name, check in (m.config.get("checks") or {}).items():
            found.append((name, check, check.get("kind") == "readiness"))
        for index, service in enumerate(m.config.get("services") or []):
            for check in service.get("checks") or []:
                kind = check.get("type") or service.get("protocol", "tcp")
                port = check.get("port") or service.get("internal_port")
                found.append((f"servicecheck-{index:02d}-{kind}-{port}", check, True))
        return found

    def checks(self, m: Machine, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        if self.state(m, now) != "started":
            return []
        since = now - (m.created + self.start_delay) - self.checks_empty
        if since < 0:
            return []
        bad = "bad" in str(m.config.get("image", ""))
        result: list[dict[str, Any]] = []
        expected = self.expected_checks(m)
        for name, check, _ in expected:
            interval = self.check_interval or _seconds(check.get("interval"), 15.0)
            run = int(since // interval)
            status = "critical" if bad or run < self.warmup_runs else "passing"
            updated = m.created + self.start_delay + self.checks_empty + run * interval
            result.append(
                {
                    "name": name,
                    "status": status,
                    "output": "connect: connection refused" if status == "critical" else "OK",
                    "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(updated))
                    + f".{int(updated * 1000) % 1000:03d}Z",
                }
            )
        if any(name.startswith("servicecheck-") for name, _, _ in expected):
            result.append({"name": "bg_deployments_compat_http", "status": "warning", "output": ""})
        return result

    def registered_now(self, m: Machine, now: float) -> bool:
        if now - m.registration_changed >= self.propagation:
            return m.registered
        return m.was_registered

    def routable(self, m: Machine, now: float) -> bool:
        """Fly's proxy sends this machine requests now."""
        if m.destroyed or not m.config.get("services") or self.state(m, now) != "started":
            return False
        if not self.registered_now(m, now):
            return False
        statuses = {c["name"]: c["status"] for c in self.checks(m, now)}
        return not any(
            statuses.get(name) == "critical"
            for name, _, gating in self.expected_checks(m)
            if gating
        )

    def healthy(self, m: Machine, now: float) -> bool:
        if not self.routable(m, now):
            return False
        reported = [c for c in self.checks(m, now) if not c["name"].startswith("bg_deployments")]
        if len(reported) < len(self.expected_checks(m)):
            return False
        return all(c["status"] == "passing" for c in reported)

    def pool(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self.lock:
            return sorted(m.id for m in self.machines.values() if self.routable(m, now))

    def registered_healthy(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self.lock:
            return sorted(m.id for m in self.machines.values() if self.healthy(m, now))

    def _sample(self) -> None:
        now = time.time()
        with self.lock:
            healthy = tuple(m.id for m in self.machines.values() if self.healthy(m, now))
            pool = tuple(sorted(m.id for m in self.machines.values() if self.routable(m, now)))
            key = (pool, healthy)
            if key != self._pool:
                self._pool = key  # type: ignore[assignment]
                self.samples.append(Sample(now, len(healthy), pool))
                self.ever_registered.update(pool)

    def _tick(self) -> None:
        while not self._stop.wait(0.01):
            self._sample()

    def view(self, m: Machine) -> dict[str, Any]:
        now = time.time()
        config = dict(m.config)
        config["metadata"] = config.get("metadata") or None
        config["checks"] = config.get("checks") or None
        state = self.state(m, now)
        events: list[dict[str, Any]] = [
            {"type": "launch", "status": "created", "timestamp": int(m.created * 1000)}
        ]
        if self.is_release(m) and state in ("stopped", "destroyed"):
            code = self.release_results.get(
                " ".join((config.get("init") or {}).get("cmd") or []), 0
            )
            events.insert(
                0,
                {
                    "type": "exit",
                    "status": "stopped",
                    "request": {"exit_event": {"exit_code": code, "requested_stop": False}},
                    "timestamp": int(now * 1000),
                },
            )
        address = self.private_ip(m) if self.private_ip else f"fdaa:0:1:a7b:1::{int(m.id[-4:], 16)}"
        return {
            "id": m.id,
            "name": m.name,
            "state": state,
            "region": m.region,
            "instance_id": m.instance_id,
            "private_ip": address,
            "config": config,
            "image_ref": {"registry": "registry.fly.io", "repository": m.config.get("image", "")},
            "checks": self.checks(m, now),
            "events": events,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.created)),
        }

    # ---- seeding (machines that `fly deploy` made before tower) -------------------------

    def seed(
        self,
        count: int,
        *,
        image: str = "registry.fly.io/shop:flyctl",
        group: str = "app",
        port: int = 3000,
        regions: tuple[str, ...] = ("ams",),
        config: dict[str, Any] | None = None,
    ) -> list[str]:
        """Started, registered Machines whose checks already pass, as ``fly deploy`` left them."""
        made = []
        with self.lock:
            for index in range(count):
                body = config or _flyctl_config(image, group, port)
                machine_id = secrets.token_hex(7)
                m = Machine(
                    id=machine_id,
                    name=f"{group}-{index}",
                    region=regions[index % len(regions)],
                    config=_copy(body),
                    created=time.time() - 3600,
                    registered=bool(body.get("services")),
                    was_registered=bool(body.get("services")),
                )
                self.machines[machine_id] = m
                made.append(machine_id)
        return made

    # ---- the proxy ---------------------------------------------------------------------

    def send(self, count: int = 1) -> list[Routed]:
        """Route requests as Fly's proxy would; each is recorded in ``routed``."""
        out = []
        for _ in range(count):
            now = time.time()
            with self.lock:
                pool = [m for m in self.machines.values() if self.routable(m, now)]
                pool.sort(key=lambda m: m.id)
                if not pool:
                    routed = Routed(now, None, 503, 0.0)
                else:
                    self._rr += 1
                    m = pool[self._rr % len(pool)]
                    image = str(m.config.get("image", ""))
                    status = 500 if "err" in image else 200
                    latency = 0.4 if "slow" in image else 0.02
                    routed = Routed(now, m.id, status, latency)
                self.routed.append(routed)
            out.append(routed)
        return out

    # ---- HTTP ------------------------------------------------------------------------

    def _limited(self, action: str, scope: str) -> Response | None:
        rate, burst = self.get_rate if action in ("get", "list") else self.rate
        with self.lock:
            bucket = self._buckets.setdefault((action, scope), Bucket(rate, burst))
            wait = bucket.take()
        if wait > 0:
            return JSONResponse(
                {"error": f"rate limit exceeded for {action}"},
                status_code=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return None

    def _begin(self, request: Request, action: str, scope: str) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            self.requests.append((request.method, request.url.path, 401))
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        limited = self._limited(action, scope)
        self.requests.append((request.method, request.url.path, 429 if limited else 0))
        return limited

    def _machine(self, request: Request, *, alive: bool = True) -> Machine | Response:
        found = self.machines.get(request.path_params["id"])
        if found is None or (alive and found.destroyed):
            return JSONResponse({"error": "machine not found"}, status_code=404)
        return found

    def _locked(self, request: Request, m: Machine) -> Response | None:
        held = m.lease is not None and m.lease[1] > time.time()
        with_nonce = held and m.lease is not None and request.headers.get(NONCE) == m.lease[0]
        self.changes.append((request.method, request.url.path, bool(with_nonce)))
        if held and not with_nonce:
            assert m.lease is not None
            return JSONResponse(
                {"error": f"machine {m.id} is leased by {m.lease[2]}; pass its nonce"},
                status_code=409,
            )
        return None

    def _mounts_refused(self, config: dict[str, Any], region: str, machine_id: str) -> str:
        for mount in config.get("mounts") or []:
            volume = self.volumes.get(mount.get("volume", ""))
            if volume is None:
                return f"volume {mount.get('volume')!r} not found"
            if volume["region"] != region:
                return f"volume {volume['id']} is in {volume['region']}, the machine in {region}"
            owner = volume.get("attached_machine_id")
            if owner and owner != machine_id and not self.machines[owner].destroyed:
                return f"volume {volume['id']} is already attached to machine {owner}"
        return ""

    async def machines_root(self, request: Request) -> Response:
        if request.method == "GET":
            if (denied := self._begin(request, "list", "app")) is not None:
                return denied
            with self.lock:
                return JSONResponse(
                    [self.view(m) for m in self.machines.values() if not m.destroyed]
                )
        if (denied := self._begin(request, "create", "app")) is not None:
            return denied
        body = await request.json()
        self.bodies.append((request.method, request.url.path, body))
        config = body.get("config") or {}
        if "image" not in config:
            return JSONResponse({"error": "config.image is required"}, status_code=422)
        guest = config.get("guest") or {}
        memory = int(guest.get("memory_mb") or 256)
        if memory % 256:
            return JSONResponse(
                {"error": f"invalid memory size {memory}; must be in 256 MiB increments"},
                status_code=422,
            )
        region = body.get("region") or "ams"  # unset: the region closest to the caller
        machine_id = secrets.token_hex(7)
        with self.lock:
            live = sum(1 for m in self.machines.values() if not m.destroyed)
            if self.capacity is not None and live >= self.capacity:
                return JSONResponse(
                    {"error": f"machine limit reached ({self.capacity}) for the organization"},
                    status_code=422,
                )
            refused = self._mounts_refused(config, region, machine_id)
            if refused:
                return JSONResponse({"error": refused}, status_code=422)
            registered = not body.get("skip_service_registration", False)
            m = Machine(
                id=machine_id,
                name=body.get("name") or machine_id,
                region=region,
                config=_copy(config),
                created=time.time(),
                registered=registered,
                was_registered=False,
                registration_changed=time.time(),
            )
            for mount in config.get("mounts") or []:
                self.volumes[mount["volume"]]["attached_machine_id"] = machine_id
            self.machines[machine_id] = m
            view = self.view(m)
        self._sample()
        return JSONResponse(view)

    async def machine(self, request: Request) -> Response:
        machine_id = request.path_params["id"]
        action = {"GET": "get", "POST": "update", "DELETE": "delete"}[request.method]
        if (denied := self._begin(request, action, machine_id)) is not None:
            return denied
        m = self._machine(request, alive=request.method != "GET")
        if isinstance(m, Response):
            return m
        if request.method == "GET":
            with self.lock:
                return JSONResponse(self.view(m))
        if (locked := self._locked(request, m)) is not None:
            return locked
        if request.method == "POST":
            body = await request.json()
            self.bodies.append((request.method, request.url.path, body))
            if "image" not in (body.get("config") or {}):
                return JSONResponse(
                    {"error": "config is required in full (config.image)"}, status_code=400
                )
            with self.lock:
                m.config = _copy(body["config"])
                m.instance_id = secrets.token_hex(8).upper()
                if self.state(m) == "started" and not body.get("skip_launch"):
                    m.created = time.time()
                view = self.view(m)
            self._sample()
            return JSONResponse(view)
        forced = "true" in (request.query_params.get("force"), request.query_params.get("kill"))
        if self.state(m) not in ("stopped",) and not forced:
            return JSONResponse(
                {"error": "machine is not stopped; stop it or pass force=true"}, status_code=412
            )
        with self.lock:
            m.destroyed = True
            m.registered = m.was_registered = False
            for volume in self.volumes.values():
                if volume.get("attached_machine_id") == m.id:
                    volume["attached_machine_id"] = None
        self._sample()
        return JSONResponse({"ok": True})

    async def action(self, request: Request) -> Response:
        action = request.path_params["action"]
        machine_id = request.path_params["id"]
        if (denied := self._begin(request, action, machine_id)) is not None:
            return denied
        m = self._machine(request, alive=action != "wait")
        if isinstance(m, Response):
            return m
        if action == "wait":
            return await self.wait(request, m)
        if action == "lease":
            return await self.lease(request, m)
        if (locked := self._locked(request, m)) is not None:
            return locked
        now = time.time()
        with self.lock:
            if action == "stop":
                raw = await request.body()
                self.bodies.append(
                    (request.method, request.url.path, await request.json() if raw else None)
                )
                m.stopped_at = now
                self._register(m, False, now)
            elif action in ("cordon", "uncordon"):
                self._register(m, action == "uncordon", now)
            else:
                return JSONResponse({"error": "unknown action"}, status_code=404)
        self._sample()
        return JSONResponse({"ok": True})

    def _register(self, m: Machine, registered: bool, now: float) -> None:
        m.was_registered = self.registered_now(m, now)
        m.registered = registered
        m.registration_changed = now

    async def metadata(self, request: Request) -> Response:
        machine_id = request.path_params["id"]
        if (denied := self._begin(request, "metadata", machine_id)) is not None:
            return denied
        m = self._machine(request)
        if isinstance(m, Response):
            return m
        if (locked := self._locked(request, m)) is not None:
            return locked
        key = request.path_params["key"]
        body = await request.json() if await request.body() else {}
        with self.lock:
            metadata = dict(m.config.get("metadata") or {})
            if request.method == "DELETE":
                metadata.pop(key, None)
            else:
                metadata[key] = str(body.get("value", ""))
            m.config["metadata"] = metadata
        return Response(status_code=204)

    async def wait(self, request: Request, m: Machine) -> Response:
        wanted = request.query_params.get("state", "started")
        if wanted not in ("started", "stopped", "destroyed"):
            return JSONResponse({"error": f"invalid state {wanted!r}"}, status_code=400)
        if wanted == "stopped" and not request.query_params.get("instance_id"):
            return JSONResponse(
                {"error": "instance_id is required to wait for stopped"}, status_code=400
            )
        timeout = min(_seconds(request.query_params.get("timeout", "60"), 60.0), self.max_wait)
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.state(m)
            if state == wanted or (wanted == "stopped" and state == "destroyed"):
                return JSONResponse({"ok": True})
            await asyncio.sleep(0.02)
        return JSONResponse({"error": f"timeout waiting for {wanted}"}, status_code=408)

    async def lease(self, request: Request, m: Machine) -> Response:
        now = time.time()
        held = m.lease if m.lease and m.lease[1] > now else None
        if request.method == "GET":
            if held is None:
                return JSONResponse({"error": "no active lease"}, status_code=404)
            return JSONResponse(
                {
                    "status": "success",
                    "data": {"nonce": "", "expires_at": int(held[1]), "owner": held[2]},
                }
            )
        if request.method == "DELETE":
            if held and request.headers.get(NONCE) != held[0]:
                return JSONResponse({"error": "wrong nonce"}, status_code=409)
            m.lease = None
            return JSONResponse({"status": "success"})
        if held and request.headers.get(NONCE) != held[0]:
            return JSONResponse(
                {"status": "error", "code": "failed_precondition", "message": "lease held"},
                status_code=409,
            )
        body: dict[str, Any] = {}
        if await request.body():
            body = await request.json()
        ttl = int(body.get("ttl") or request.query_params.get("ttl") or 30)
        nonce = held[0] if held else secrets.token_hex(12)
        owner = request.headers.get("x-fake-owner", "tower@fake")
        m.lease = (nonce, now + ttl, owner)
        return JSONResponse(
            {
                "status": "success",
                "data": {
                    "nonce": nonce,
                    "expires_at": int(now + ttl),
                    "owner": owner,
                    "description": body.get("description", ""),
                },
            },
            status_code=201,
        )

    async def volumes_root(self, request: Request) -> Response:
        action = "list_volumes" if request.method == "GET" else "create_volume"
        if (denied := self._begin(request, action, "app")) is not None:
            return denied
        if request.method == "GET":
            return JSONResponse(list(self.volumes.values()))
        body = await request.json()
        self.bodies.append((request.method, request.url.path, body))
        if not body.get("name") or not body.get("region"):
            return JSONResponse({"error": "name and region are required"}, status_code=422)
        volume_id = "vol_" + secrets.token_hex(8)
        source = body.get("source_volume_id")
        if source and source not in self.volumes:
            return JSONResponse({"error": f"source volume {source} not found"}, status_code=404)
        volume = {
            "id": volume_id,
            "name": body["name"],
            "region": body["region"],
            "size_gb": int(body.get("size_gb") or 1),
            "state": "created",
            "encrypted": body.get("encrypted", True),
            "attached_machine_id": None,
            "source_volume_id": source,
        }
        self.volumes[volume_id] = volume
        return JSONResponse(volume)

    async def volume(self, request: Request) -> Response:
        volume_id = request.path_params["vid"]
        if (denied := self._begin(request, "volume", volume_id)) is not None:
            return denied
        volume = self.volumes.get(volume_id)
        if volume is None:
            return JSONResponse({"error": "volume not found"}, status_code=404)
        if request.method == "GET":
            return JSONResponse(volume)
        owner = volume.get("attached_machine_id")
        if owner and not self.machines[owner].destroyed:
            return JSONResponse(
                {"error": f"volume is attached to machine {owner}"}, status_code=412
            )
        del self.volumes[volume_id]
        return JSONResponse(volume)

    async def proxy(self, request: Request) -> Response:
        routed = self.send()[0]
        if routed.machine is None:
            return JSONResponse({"error": "no machine available"}, status_code=503)
        return JSONResponse({"machine": routed.machine}, status_code=routed.status)

    async def prometheus(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"status": "error", "error": "unauthorized"}, status_code=401)
        if request.path_params["org"] != self.org:
            return JSONResponse({"status": "error", "error": "unknown org"}, status_code=404)
        query = request.query_params.get("query", "")
        try:
            value = self.evaluate(query, time.time())
        except ValueError as exc:
            return JSONResponse(
                {"status": "error", "errorType": "bad_data", "error": str(exc)}, status_code=400
            )
        result = [] if value is None else [{"metric": {}, "value": [time.time(), str(value)]}]
        return JSONResponse(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    def evaluate(self, query: str, now: float) -> float | None:
        """The query shapes of Fly's metrics docs: sum(increase|rate(counter)) and quantiles."""
        selector = re.search(r"(fly_app_http_[a-z_]+)\{([^}]*)\}\[(\d+)(s|m)\]", query)
        if not selector:
            raise ValueError(f"unsupported query: {query}")
        metric, labels, amount, unit = selector.groups()
        window = float(amount) * (60 if unit == "m" else 1)
        matchers = dict(re.findall(r'(\w+)=~?"([^"]*)"', labels))
        if matchers.get("app", self.app) != self.app:
            return None
        instance = re.compile(matchers.get("instance", ".*"))
        status = re.compile(matchers.get("status", ".*"))
        with self.lock:
            seen = [
                r
                for r in self.routed
                if r.machine
                and now - window <= r.at <= now
                and instance.fullmatch(r.machine)
                and status.fullmatch(str(r.status))
            ]
        if metric == "fly_app_http_responses_count":
            if not seen:
                return None
            return len(seen) / window if "rate(" in query else float(len(seen))
        quantile = re.search(r"histogram_quantile\(\s*([0-9.]+)", query)
        if metric == "fly_app_http_response_time_seconds_bucket" and quantile:
            if not seen:
                return None
            latencies = sorted(r.latency for r in seen)
            index = min(
                len(latencies) - 1, math.ceil(float(quantile.group(1)) * len(latencies)) - 1
            )
            return latencies[max(0, index)]
        raise ValueError(f"unsupported query: {query}")

    def app_routes(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/apps/{app}/machines", self.machines_root, methods=["GET", "POST"]),
                Route(
                    "/v1/apps/{app}/machines/{id}", self.machine, methods=["GET", "POST", "DELETE"]
                ),
                Route(
                    "/v1/apps/{app}/machines/{id}/metadata/{key}",
                    self.metadata,
                    methods=["POST", "DELETE"],
                ),
                Route(
                    "/v1/apps/{app}/machines/{id}/{action}",
                    self.action,
                    methods=["GET", "POST", "DELETE"],
                ),
                Route("/v1/apps/{app}/volumes", self.volumes_root, methods=["GET", "POST"]),
                Route("/v1/apps/{app}/volumes/{vid}", self.volume, methods=["GET", "DELETE"]),
                Route("/prometheus/{org}/api/v1/query", self.prometheus, methods=["GET", "POST"]),
                Route("/_fake/proxy/{path:path}", self.proxy),
            ]
        )

    # ---- running ---------------------------------------------------------------------

    def start(self, port: int) -> str:
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()
        return self.serve(port)

    def stop(self) -> None:
        self._stop.set()
        self.shutdown()


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(data)


def _flyctl_config(image: str, group: str, port: int) -> dict[str, Any]:
    """A Machine config as `fly deploy` writes it for one process group."""
    config: dict[str, Any] = {
        "image": image,
        "env": {"FLY_PROCESS_GROUP": group, "PRIMARY_REGION": "ams", "NODE_ENV": "production"},
        "init": {"cmd": ["node", "worker.js"]} if group != "app" else {},
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
        "metadata": {
            "fly_platform_version": "v2",
            "fly_process_group": group,
            "fly_release_id": "Rel_abc",
            "fly_release_version": "7",
            "fly_flyctl_version": "0.3.40",
        },
        "restart": {"policy": "on-failure", "max_retries": 10},
        "stop_config": {"timeout": "30s", "signal": "SIGTERM"},
    }
    if group == "app":
        config["services"] = [
            {
                "protocol": "tcp",
                "internal_port": port,
                "autostop": "stop",
                "autostart": True,
                "min_machines_running": 1,
                "ports": [
                    {"port": 80, "handlers": ["http"], "force_https": True},
                    {"port": 443, "handlers": ["tls", "http"]},
                ],
                "concurrency": {"type": "requests", "soft_limit": 200, "hard_limit": 250},
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
        ]
        config["statics"] = [{"guest_path": "/app/public", "url_prefix": "/static/"}]
    return config
