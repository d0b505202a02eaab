"""A local server implementing the subset of the Fly Machines API that tower uses.

Documented contract (https://fly.io/docs/machines/api/machines-resource/):

- ``Authorization: Bearer <token>`` on every request, else 401;
- ``GET/POST /v1/apps/{app}/machines`` list and create (``config``, ``region``,
  ``name``, ``skip_service_registration``);
- ``GET/POST/DELETE /v1/apps/{app}/machines/{id}`` get, update (the whole
  ``config``; a started machine reboots with a new ``instance_id`` unless
  ``skip_launch``), destroy (``?force=true``, or ``kill=true`` as flyctl sends it,
  for a machine that is not stopped, else 412);
- ``POST .../{id}/stop`` (``{"signal", "timeout"}``);
- ``GET .../{id}/wait?state=&timeout=&instance_id=`` (seconds, at most
  ``max_wait``; ``instance_id`` is required to wait for ``stopped``; 408 on timeout);
- ``POST/GET/DELETE .../{id}/lease`` (create takes ``{"ttl", "description"}``
  and answers 201 with ``data.nonce``; 409 when held by someone else), and the
  ``fly-machine-lease-nonce`` header on every change while a lease is held;
- ``POST .../{id}/cordon`` and ``/uncordon`` (services out of / into the proxy).

States: created -> starting -> started (after ``start_delay``); checks pass after
``check_delay`` unless the image contains "bad" (then ``critical``);
stop: stopping -> stopped; destroy: destroyed. ``GET /_fake/registered`` says
which machines Fly's proxy would send traffic to now; ``ever_registered`` keeps
every machine that was ever in it, and ``changes`` every change request with
whether it carried the lease nonce.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

NONCE = "fly-machine-lease-nonce"


@dataclass
class Machine:
    id: str
    name: str
    region: str
    config: dict[str, Any]
    registered: bool
    created: float
    instance_id: str = field(default_factory=lambda: secrets.token_hex(8).upper())
    stopped_at: float | None = None
    destroyed: bool = False
    lease: tuple[str, float, str] | None = None  # nonce, expires_at, owner


class FakeFly:
    def __init__(
        self,
        token: str,
        *,
        start_delay: float = 0.2,
        check_delay: float = 0.3,
        max_wait: float = 60.0,
    ) -> None:
        self.token = token
        self.start_delay = start_delay
        self.check_delay = check_delay
        self.max_wait = max_wait
        self.machines: dict[str, Machine] = {}
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self.ever_registered: set[str] = set()
        self.changes: list[tuple[str, str, bool]] = []
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.port = 0

    # ---- model -----------------------------------------------------------------------

    def state(self, m: Machine) -> str:
        now = time.time()
        if m.destroyed:
            return "destroyed"
        if m.stopped_at is not None:
            return "stopped" if now - m.stopped_at > 0.1 else "stopping"
        age = now - m.created
        if age < self.start_delay / 2:
            return "created"
        if age < self.start_delay:
            return "starting"
        return "started"

    def checks(self, m: Machine) -> list[dict[str, Any]]:
        state = self.state(m)
        result = []
        for name in m.config.get("checks") or {}:
            if state != "started" or "bad" in m.config.get("image", ""):
                status = "critical"
            elif time.time() - m.created < self.start_delay + self.check_delay:
                status = "warning"
            else:
                status = "passing"
            result.append({"name": name, "status": status, "output": f"fake check {status}"})
        return result

    def view(self, m: Machine) -> dict[str, Any]:
        return {
            "id": m.id,
            "name": m.name,
            "state": self.state(m),
            "region": m.region,
            "instance_id": m.instance_id,
            "private_ip": f"fdaa:0:1::{int(m.id[-4:], 16)}",
            "config": m.config,
            "checks": self.checks(m),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.created)),
        }

    # ---- HTTP ------------------------------------------------------------------------

    def _auth(self, request: Request) -> Response | None:
        self.requests.append((request.method, request.url.path))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return None

    def _machine(self, request: Request) -> Machine | Response:
        found = self.machines.get(request.path_params["id"])
        if found is None or found.destroyed:
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

    async def machines_root(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if request.method == "GET":
            return JSONResponse([self.view(m) for m in self.machines.values() if not m.destroyed])
        body = await request.json()
        self.bodies.append((request.method, request.url.path, body))
        if "image" not in body.get("config", {}):
            return JSONResponse({"error": "config.image is required"}, status_code=422)
        machine_id = secrets.token_hex(7)
        m = Machine(
            id=machine_id,
            name=body.get("name") or machine_id,
            region=body.get("region") or "ams",
            config=body["config"],
            registered=not body.get("skip_service_registration", False),
            created=time.time(),
        )
        if m.registered:
            self.ever_registered.add(m.id)
        self.machines[machine_id] = m
        return JSONResponse(self.view(m))

    async def machine(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        m = self._machine(request)
        if isinstance(m, Response):
            return m
        if request.method == "GET":
            return JSONResponse(self.view(m))
        if (locked := self._locked(request, m)) is not None:
            return locked
        if request.method == "POST":
            body = await request.json()
            self.bodies.append((request.method, request.url.path, body))
            if "image" not in body.get("config", {}):
                return JSONResponse(
                    {"error": "config is required in full (config.image)"}, status_code=400
                )
            m.config = body["config"]
            m.instance_id = secrets.token_hex(8).upper()
            if self.state(m) == "started" and not body.get("skip_launch"):
                m.created = time.time()
            return JSONResponse(self.view(m))
        forced = "true" in (request.query_params.get("force"), request.query_params.get("kill"))
        if self.state(m) not in ("stopped",) and not forced:
            return JSONResponse(
                {"error": "machine is not stopped; stop it or pass force=true"}, status_code=412
            )
        m.destroyed = True
        return JSONResponse({"ok": True})

    async def action(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        m = self._machine(request)
        if isinstance(m, Response):
            return m
        action = request.path_params["action"]
        if action == "wait":
            wanted = request.query_params.get("state", "started")
            if wanted not in ("started", "stopped", "destroyed"):
                return JSONResponse({"error": f"invalid state {wanted!r}"}, status_code=400)
            if wanted == "stopped" and not request.query_params.get("instance_id"):
                return JSONResponse(
                    {"error": "instance_id is required to wait for stopped"}, status_code=400
                )
            timeout = min(float(request.query_params.get("timeout", "60")), self.max_wait)
            deadline = time.time() + timeout
            while time.time() < deadline:
                if self.state(m) == wanted:
                    return JSONResponse({"ok": True})
                await asyncio.sleep(0.02)
            return JSONResponse({"error": f"timeout waiting for {wanted}"}, status_code=408)
        if action == "lease":
            return await self.lease(request, m)
        if (locked := self._locked(request, m)) is not None:
            return locked
        if action == "stop":
            self.bodies.append(
                (
                    request.method,
                    request.url.path,
                    await request.json() if await request.body() else None,
                )
            )
            m.stopped_at = time.time()
            m.registered = False
        elif action == "cordon":
            m.registered = False
        elif action == "uncordon":
            m.registered = True
            self.ever_registered.add(m.id)
        else:
            return JSONResponse({"error": "unknown action"}, status_code=404)
        return JSONResponse({"ok": True})

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

    async def registered(self, request: Request) -> Response:
        return JSONResponse(
            [m.id for m in self.machines.values() if m.registered and self.state(m) == "started"]
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/apps/{app}/machines", self.machines_root, methods=["GET", "POST"]),
                Route(
                    "/v1/apps/{app}/machines/{id}", self.machine, methods=["GET", "POST", "DELETE"]
                ),
                Route(
                    "/v1/apps/{app}/machines/{id}/{action}",
                    self.action,
                    methods=["GET", "POST", "DELETE"],
                ),
                Route("/_fake/registered", self.registered),
            ]
        )

    # ---- running ---------------------------------------------------------------------

    def start(self, port: int) -> str:
        self.port = port
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.server:
            self.server.should_exit = True
        if self.thread:
            self.thread.join(5)
