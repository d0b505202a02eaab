"""A local Vercel: the REST API tower uses, deployments that serve, production routing.

Built from Vercel's documentation, unkind behaviours first; docs/deploy.md
("Vercel: what the test fake reproduces") lists the same table. Sources:

[create]    https://vercel.com/docs/rest-api/deployments/create-a-new-deployment
[get]       https://vercel.com/docs/rest-api/deployments/get-a-deployment-by-id-or-url
            (``readyState``: QUEUED, BUILDING, INITIALIZING, READY, ERROR, CANCELED;
            ``errorMessage`` set when it ERRORs)
[list]      https://vercel.com/docs/rest-api/deployments/list-deployments
[paging]    https://vercel.com/docs/rest-api#pagination (``pagination.next`` is the
            timestamp to pass as ``until`` for the next page; ``null`` on the last)
[limits]    https://vercel.com/docs/rest-api#rate-limits (429, ``X-RateLimit-Limit``,
            ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` in UTC epoch seconds)
[errors]    https://vercel.com/docs/rest-api#errors (``{"error": {"code", "message"}}``)
[teams]     https://vercel.com/docs/rest-api#authentication ("Accessing resources
            owned by a team": ``?teamId=``; a team's project is not found without it)
[promote]   https://vercel.com/docs/rest-api/projects/point-production-traffic-to-a-given-deployment
            (201/202; "Vercel promotes deployments asynchronously") and
            https://vercel.com/docs/deployments/promoting-a-deployment (a preview is
            promoted only through a rebuild; a staged production build without one)
[rollback]  https://vercel.com/docs/rest-api/projects/point-production-traffic-to-a-previous-production-deployment-by-id
            and https://vercel.com/docs/instant-rollback ("eligible deployments":
            only one that has served production)
[rolling]   https://vercel.com/docs/rolling-releases,
            https://vercel.com/docs/rest-api/rolling-release/update-the-rolling-release-settings-for-the-project
            ("changes only affect the next production deployment and do not alter
            a rollout that's already in-flight"),
            .../update-the-active-rolling-release-to-the-next-stage-for-a-project
            (``nextStageIndex``, ``canaryDeploymentId``), .../complete-the-rolling-release-for-the-project
[env]       https://vercel.com/docs/rest-api/projects/retrieve-the-environment-variables-of-a-project-by-id-or-name
[domains]   https://vercel.com/docs/rest-api/projects/retrieve-project-domains-by-project-by-id-or-name
            and https://vercel.com/docs/rest-api/domains/get-a-domain-s-configuration
[protect]   https://vercel.com/docs/deployment-protection/methods-to-bypass-deployment-protection/protection-bypass-automation
            (``x-vercel-protection-bypass``)

Behaviours (unkind first; none can be switched off, only timed):

1. A new deployment is QUEUED, then BUILDING for ``build_time`` seconds, then
   READY — or ERROR with an ``errorMessage`` when its version names ``fail``
   [create, get]. A canceled one is CANCELED.
2. 429 with ``X-RateLimit-*`` headers once ``rate`` requests per second (burst
   ``burst``) are spent; the reset is in whole epoch seconds [limits].
3. Promote answers 202 and takes effect ``promote_delay`` seconds later [promote];
   promoting a deployment whose target is not production is refused (400), as
   the API never rebuilds [promote]. With a rolling-release config, a promote
   starts a rolling release at the first stage instead [rolling].
4. Lists come in pages of at most ``page_size`` items (the ``limit`` asked for,
   when smaller) with ``pagination.next`` [paging].
5. The project belongs to team ``team``: without ``teamId`` (or with another) it
   is 404 ``not_found`` [teams].
6. Instant rollback is refused (409) for a deployment that never served
   production [rollback]; it ends an active rolling release [rolling: "At any
   point, you can use Instant Rollback"]. It also cancels a promotion not yet
   effective (the docs say nothing of that case; the fake lets the last request win).
7. A rolling-release config change does not alter a rollout in flight [rolling].
8. Deployment URLs (not the production domain) are protected: 401 without the
   bypass header when ``bypass`` is set [protect].
9. Env answers carry an encrypted ``value``; tower must not surface it [env].
10. The production domain (``GET /_fake/production/...``) serves the production
    deployment, or during a rolling release the canary for its share of requests
    (every request recorded in ``served``); a version naming ``bad`` answers 503
    on every path, one naming ``err`` answers 500 off the health path and calls
    ``on_error`` (what its error SDK would report).
"""

from __future__ import annotations

import math
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

BYPASS_HEADER = "x-vercel-protection-bypass"


@dataclass
class Deployment:
    id: str
    url: str
    target: str | None
    meta: dict[str, str]
    created: float
    body: dict[str, Any]
    canceled: bool = False
    served_production: bool = False

    @property
    def version(self) -> str:
        return self.meta.get("tower_version", "")


@dataclass(frozen=True)
class Served:
    at: float
    deployment: str
    status: int


@dataclass
class Rollout:
    current: str
    canary: str
    stages: list[dict[str, Any]]
    index: int = 0
    state: str = "ACTIVE"


@dataclass
class Pending:
    at: float
    action: Callable[[], None]


@dataclass
class FakeProject:
    id: str
    name: str
    production: str | None = None
    rolling: list[dict[str, Any]] | None = None
    rollout: Rollout | None = None
    envs: list[dict[str, Any]] = field(default_factory=list)
    domains: list[dict[str, Any]] = field(default_factory=list)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeVercel(ThreadedApp):
    def __init__(
        self,
        token: str,
        *,
        team: str = "team_shop",
        project: str = "shop",
        build_time: float = 0.6,
        promote_delay: float = 0.4,
        rate: float = 20.0,
        burst: int = 20,
        page_size: int = 3,
        bypass: str = "",
        health_path: str = "/api/health",
    ) -> None:
        self.token, self.team = token, team
        self.project = FakeProject(id="prj_" + secrets.token_hex(6), name=project)
        self.build_time, self.promote_delay = build_time, promote_delay
        self.rate, self.burst = rate, burst
        self.tokens, self.refilled = float(burst), time.monotonic()
        self.page_size = page_size
        self.bypass = bypass
        self.health_path = health_path
        self.deployments: dict[str, Deployment] = {}
        self.pending: list[Pending] = []
        self.requests: list[tuple[str, str, int]] = []
        self.served: list[Served] = []
        self.on_error: Callable[[Deployment], None] | None = None
        self.lock = threading.RLock()
        self._rr = 0
        self._clock = 0.0
        self.port = 0

    # ---- model -----------------------------------------------------------------------

    def _stamp(self) -> float:
        """Creation times strictly increase, as the list's ``until`` cursor needs."""
        self._clock = max(time.time(), self._clock + 0.001)
        return self._clock

    def seed(self, version: str = "0", *, production: bool = True) -> Deployment:
        """A deployment made before tower (a `git push`), READY and serving production."""
        with self.lock:
            d = self._new({"target": "production", "meta": {"tower_version": version}}, built=True)
            if production:
                self.project.production = d.id
                d.served_production = True
            return d

    def _new(self, body: dict[str, Any], *, built: bool = False) -> Deployment:
        dpl = "dpl_" + secrets.token_hex(10)
        created = self._stamp() - (self.build_time + 1 if built else 0)
        d = Deployment(
            id=dpl,
            url=f"{self.project.name}-{dpl[4:13]}.vercel.app",
            target=body.get("target"),
            meta={str(k): str(v) for k, v in (body.get("meta") or {}).items()},
            created=created,
            body=body,
        )
        self.deployments[dpl] = d
        return d

    def state(self, d: Deployment, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if d.canceled:
            return "CANCELED"
        age = now - d.created
        if age < min(0.1, self.build_time / 4):
            return "QUEUED"
        if age < self.build_time:
            return "BUILDING"
        return "ERROR" if "fail" in d.version else "READY"

    def _settle(self) -> None:
        now = time.time()
        with self.lock:
            due = [p for p in self.pending if p.at <= now]
            self.pending = [p for p in self.pending if p.at > now]
        for p in due:
            p.action()

    def _later(self, action: Callable[[], None]) -> None:
        self.pending.append(Pending(time.time() + self.promote_delay, action))

    def _json(self, d: Deployment) -> dict[str, Any]:
        state = self.state(d)
        data: dict[str, Any] = {
            "id": d.id,
            "uid": d.id,
            "url": d.url,
            "name": self.project.name,
            "projectId": self.project.id,
            "readyState": state,
            "state": state,
            "target": d.target,
            "meta": dict(d.meta),
            "createdAt": int(d.created * 1000),
            "created": int(d.created * 1000),
            "errorMessage": 'Command "npm run build" exited with 1' if state == "ERROR" else None,
            "aliasAssigned": d.served_production or None,
        }
        return data

    def production_of(self) -> tuple[str | None, Rollout | None]:
        self._settle()
        with self.lock:
            rollout = self.project.rollout
            return (
                self.project.production,
                rollout if rollout and rollout.state == "ACTIVE" else None,
            )

    # ---- production traffic --------------------------------------------------------------

    def pick(self) -> str | None:
        production, rollout = self.production_of()
        with self.lock:
            self._rr += 1
            if rollout is not None:
                share = float(rollout.stages[rollout.index]["targetPercentage"])
                return rollout.canary if (self._rr * 37 % 100) < share else rollout.current
            return production

    def answer(self, d: Deployment, path: str) -> int:
        if self.state(d) != "READY":
            return 404
        if "bad" in d.version:
            return 503
        if "err" in d.version and path != self.health_path:
            if self.on_error is not None:
                self.on_error(d)
            return 500
        return 200

    def send(self, path: str = "/") -> Served:
        chosen = self.pick()
        with self.lock:
            d = self.deployments.get(chosen or "")
        status = 404 if d is None else self.answer(d, path)
        served = Served(time.time(), chosen or "", status)
        with self.lock:
            self.served.append(served)
        return served

    # ---- HTTP ------------------------------------------------------------------------

    def _error(self, status: int, code: str, message: str, **headers: str) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": code, "message": message}}, status_code=status, headers=headers
        )

    def _begin(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            self.requests.append((request.method, request.url.path, 403))
            return self._error(403, "forbidden", "Not authorized")
        now = time.monotonic()
        with self.lock:
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            limited = self.tokens < 1
            if not limited:
                self.tokens -= 1
            wait = (1 - self.tokens) / self.rate if limited else 0.0
        if limited:
            self.requests.append((request.method, request.url.path, 429))
            reset = math.ceil(time.time() + wait)
            return self._error(
                429,
                "rate_limited",
                "Rate limit exceeded",
                **{
                    "X-RateLimit-Limit": str(self.burst),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(reset),
                },
            )
        self.requests.append((request.method, request.url.path, 0))
        if request.query_params.get("teamId") != self.team:
            return self._error(404, "not_found", "Project not found")
        self._settle()
        return None

    def _project(self, request: Request, key: str = "project") -> Response | None:
        wanted = request.path_params[key]
        if wanted not in (self.project.id, self.project.name):
            return self._error(404, "not_found", "Project not found")
        return None

    async def deployments_root(self, request: Request) -> Response:
        if (denied := self._begin(request)) is not None:
            return denied
        if request.method == "POST":
            body = await request.json()
            if body.get("project") not in (self.project.id, self.project.name):
                return self._error(404, "not_found", "Project not found")
            if not body.get("gitSource") and not body.get("files"):
                return self._error(400, "bad_request", "Either gitSource or files is required")
            with self.lock:
                d = self._new(body)
            return JSONResponse(self._json(d))
        project = request.query_params.get("projectId", "")
        limit = min(int(request.query_params.get("limit") or 20), self.page_size)
        until = request.query_params.get("until")
        with self.lock:
            rows = sorted(
                (d for d in self.deployments.values() if project in ("", self.project.id)),
                key=lambda d: d.created,
                reverse=True,
            )
        if until:
            rows = [d for d in rows if d.created * 1000 < int(until)]
        page = rows[:limit]
        following = int(page[-1].created * 1000) if len(rows) > limit else None
        return JSONResponse(
            {
                "deployments": [self._json(d) for d in page],
                "pagination": {"count": len(page), "next": following, "prev": None},
            }
        )

    async def deployment(self, request: Request) -> Response:
        if (denied := self._begin(request)) is not None:
            return denied
        key = request.path_params["id"]
        with self.lock:
            d = self.deployments.get(key) or next(
                (x for x in self.deployments.values() if x.url == key), None
            )
        if d is None:
            return self._error(404, "not_found", "Deployment not found")
        return JSONResponse(self._json(d))

    async def cancel(self, request: Request) -> Response:
        if (denied := self._begin(request)) is not None:
            return denied
        d = self.deployments.get(request.path_params["id"])
        if d is None:
            return self._error(404, "not_found", "Deployment not found")
        if self.state(d) not in ("QUEUED", "BUILDING", "INITIALIZING"):
            return self._error(400, "bad_request", "Only building deployments can be canceled")
        d.canceled = True
        return JSONResponse(self._json(d))

    async def project_get(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        production = self.project.production
        targets = {"production": {"id": production}} if production else {}
        return JSONResponse({"id": self.project.id, "name": self.project.name, "targets": targets})

    async def promote(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        d = self.deployments.get(request.path_params["dpl"])
        if d is None or self.state(d) != "READY":
            return self._error(400, "bad_request", "Deployment is not ready")
        if d.target != "production":
            return self._error(
                400, "bad_request", "A preview deployment is promoted through a rebuild"
            )
        with self.lock:
            config = self.project.rolling
            current = self.project.production
            if config and current and current != d.id:
                stages = [dict(s) for s in config]

                def start() -> None:
                    with self.lock:
                        self.project.rollout = Rollout(current=current, canary=d.id, stages=stages)
                        d.served_production = True

                self._later(start)
            else:

                def switch() -> None:
                    with self.lock:
                        self.project.production = d.id
                        d.served_production = True

                self._later(switch)
        return Response(status_code=202)

    async def rollback(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        d = self.deployments.get(request.path_params["dpl"])
        if d is None:
            return self._error(404, "not_found", "Deployment not found")
        if not d.served_production:
            return self._error(
                409,
                "conflict",
                "Only a deployment that has served production can be rolled back to",
            )
        with self.lock:
            self.pending.clear()
            if self.project.rollout and self.project.rollout.state == "ACTIVE":
                self.project.rollout.state = "ABORTED"
            self.project.production = d.id
        return Response(status_code=201)

    async def rolling_config(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        if request.method == "PATCH":
            body = await request.json()
            stages = body.get("stages") or []
            percents = [float(s.get("targetPercentage", 0)) for s in stages]
            if len(stages) < 2 or percents[-1] != 100 or percents != sorted(set(percents)):
                return self._error(
                    400, "bad_request", "stages must increase and the last must be 100"
                )
            with self.lock:
                self.project.rolling = [dict(s) for s in stages]
        config = (
            {"target": "production", "stages": self.project.rolling}
            if self.project.rolling
            else None
        )
        return JSONResponse({"rollingRelease": config})

    def _rollout_json(self) -> dict[str, Any] | None:
        r = self.project.rollout
        if r is None:
            return None
        return {
            "state": r.state,
            "currentDeployment": {"id": r.current},
            "canaryDeployment": {"id": r.canary},
            "activeStage": {"index": r.index, **r.stages[r.index]},
            "stages": r.stages,
        }

    async def rolling_release(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        return JSONResponse({"rollingRelease": self._rollout_json()})

    async def approve_stage(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        body = await request.json()
        r = self.project.rollout
        if r is None or r.state != "ACTIVE" or body.get("canaryDeploymentId") != r.canary:
            return self._error(400, "bad_request", "No active rolling release for that deployment")
        index = int(body.get("nextStageIndex", -1))
        if not r.index < index < len(r.stages):
            return self._error(400, "bad_request", f"Invalid nextStageIndex {index}")

        def advance() -> None:
            with self.lock:
                r.index = index
                if index == len(r.stages) - 1:
                    r.state = "COMPLETE"
                    self.project.production = r.canary

        self._later(advance)
        return JSONResponse({"rollingRelease": self._rollout_json()})

    async def complete(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        body = await request.json()
        r = self.project.rollout
        if r is None or r.state != "ACTIVE" or body.get("canaryDeploymentId") != r.canary:
            return self._error(400, "bad_request", "No active rolling release for that deployment")
        with self.lock:
            r.state = "COMPLETE"
            r.index = len(r.stages) - 1
            self.project.production = r.canary
        return JSONResponse({"rollingRelease": self._rollout_json()})

    async def env(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        return JSONResponse({"envs": self.project.envs})

    async def domains(self, request: Request) -> Response:
        if (denied := self._begin(request) or self._project(request)) is not None:
            return denied
        return JSONResponse(
            {
                "domains": self.project.domains,
                "pagination": {"count": len(self.project.domains), "next": None, "prev": None},
            }
        )

    async def domain_config(self, request: Request) -> Response:
        if (denied := self._begin(request)) is not None:
            return denied
        name = request.path_params["domain"]
        return JSONResponse(
            self.project.configs.get(name, {"misconfigured": True, "configuredBy": None})
        )

    async def site(self, request: Request) -> Response:
        """A deployment's own URL (``/_fake/site/<url>/<path>``), protected when ``bypass``."""
        host, _, rest = request.path_params["path"].partition("/")
        with self.lock:
            d = next((x for x in self.deployments.values() if x.url == host), None)
        if d is None:
            return JSONResponse({"error": "DEPLOYMENT_NOT_FOUND"}, status_code=404)
        if self.bypass and request.headers.get(BYPASS_HEADER) != self.bypass:
            return JSONResponse({"error": "Authentication Required"}, status_code=401)
        status = self.answer(d, "/" + rest)
        return JSONResponse({"deployment": d.id}, status_code=status)

    async def production_site(self, request: Request) -> Response:
        served = self.send("/" + request.path_params["path"])
        return JSONResponse({"deployment": served.deployment}, status_code=served.status)

    def app_routes(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v13/deployments", self.deployments_root, methods=["POST"]),
                Route("/v6/deployments", self.deployments_root, methods=["GET"]),
                Route("/v13/deployments/{id}", self.deployment, methods=["GET"]),
                Route("/v12/deployments/{id}/cancel", self.cancel, methods=["PATCH"]),
                Route("/v9/projects/{project}", self.project_get, methods=["GET"]),
                Route("/v10/projects/{project}/promote/{dpl}", self.promote, methods=["POST"]),
                Route("/v1/projects/{project}/rollback/{dpl}", self.rollback, methods=["POST"]),
                Route(
                    "/v1/projects/{project}/rolling-release/config",
                    self.rolling_config,
                    methods=["GET", "PATCH"],
                ),
                Route(
                    "/v1/projects/{project}/rolling-release",
                    self.rolling_release,
                    methods=["GET"],
                ),
                Route(
                    "/v1/projects/{project}/rolling-release/approve-stage",
                    self.approve_stage,
                    methods=["POST"],
                ),
                Route(
                    "/v1/projects/{project}/rolling-release/complete",
                    self.complete,
                    methods=["POST"],
                ),
                Route("/v10/projects/{project}/env", self.env, methods=["GET"]),
                Route("/v9/projects/{project}/domains", self.domains, methods=["GET"]),
                Route("/v6/domains/{domain}/config", self.domain_config, methods=["GET"]),
                Route("/_fake/site/{path:path}", self.site),
                Route("/_fake/production/{path:path}", self.production_site),
            ]
        )

    # ---- running ---------------------------------------------------------------------

    def start(self, port: int) -> str:
        return self.serve(port)

    def stop(self) -> None:
        self.shutdown()
