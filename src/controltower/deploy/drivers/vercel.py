"""The vercel driver: Vercel's REST API, used the way `vercel deploy --prod --skip-domain`
and `vercel promote` use it.

A release is one Vercel deployment, its id the release's artifact. It is created
as a *staged production deployment* (``target: production`` without the
production domains, https://vercel.com/docs/cli/deploying-from-cli), so that it
is built once with the production variables and promoted later without a
rebuild. Tower waits for ``READY``, runs its health gate against the
deployment's own URL (with the protection-bypass header when a secret is set),
then moves traffic:

- a full switch is a promote (``POST /v10/projects/{id}/promote/{dpl}``), which
  Vercel accepts before it takes effect: tower waits until the project's
  production target is the deployment;
- a canary step is a rolling-release stage: tower writes the project's stages
  from ``[[deploy.steps]]`` (manual approval: tower's analysis decides), the
  promote starts the rollout at the first stage, and ``approve-stage`` /
  ``complete`` advance it;
- rollback is Instant Rollback (``POST /v1/projects/{id}/rollback/{dpl}``), which
  also ends a rolling release.

Deployments are never deleted: the old one is what Instant Rollback goes back to.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx

from controltower.clock import system_clock
from controltower.deploy.drivers.base import Artifact, Driver, Instance, Probe, ReleaseInfo
from controltower.deploy.drivers.vercel_api import VercelAPI
from controltower.deploy.git import git_info
from controltower.exceptions import DriverError
from controltower.spec import Spec
from controltower.spec.deploy import VercelDriverSpec
from controltower.typing import Clock

RELEASE_KEY = "tower_release"
VERSION_KEY = "tower_version"
ADOPTED = "vercel-"
BUILDING = ("QUEUED", "BUILDING", "INITIALIZING")
DEAD = ("ERROR", "CANCELED", "DELETED")
BYPASS_HEADER = "x-vercel-protection-bypass"
LISTED = 100


def key_of(deployment: dict[str, Any]) -> str:
    """The release key a deployment runs as: tower's tag, or ``vercel-<id>`` for others."""
    tag = str((deployment.get("meta") or {}).get(RELEASE_KEY) or "")
    return tag or ADOPTED + str(deployment.get("id") or deployment.get("uid") or "")


def state_of(deployment: dict[str, Any]) -> str:
    return str(deployment.get("readyState") or deployment.get("state") or "")


def deployment_body(
    spec: VercelDriverSpec,
    release: ReleaseInfo,
    *,
    sha: str = "",
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The create-deployment body: pure, tested by equality."""
    body: dict[str, Any] = {
        "name": spec.project,
        "project": spec.project,
        "target": "production",
        "autoAssignCustomDomains": False,
        "meta": {RELEASE_KEY: release.id, VERSION_KEY: release.version},
    }
    if files is not None:
        body["files"] = files
        return body
    source: dict[str, Any] = {
        "type": spec.git_type,
        "repoId": spec.git_repo_id,
        "ref": release.image or spec.git_ref or sha or "main",
    }
    if sha and not release.image and not spec.git_ref:
        source["sha"] = sha
    body["gitSource"] = source
    return body


def stages_for(weights: list[float]) -> list[dict[str, Any]]:
    """Rolling-release stages from canary weights; no duration: each waits for approval."""
    stages = [{"targetPercentage": round(w * 100, 2)} for w in weights if 0 < w < 1]
    return [*stages, {"targetPercentage": 100}]


class VercelDriver(Driver):
    name = "vercel"

    def __init__(
        self,
        spec: VercelDriverSpec,
        *,
        token: str,
        team_id: str = "",
        steps: list[float] | None = None,
        public_url: str | None = None,
        bypass: str = "",
        root: Path | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if not spec.project:
            raise DriverError("[deploy.vercel] project is empty", hint='set project = "prj_…"')
        self.spec = spec
        self.clock = clock
        self.root = root or Path(".")
        self.api = VercelAPI(token, team_id=team_id, base_url=spec.api_url, clock=clock)
        self.site = httpx.Client(headers={BYPASS_HEADER: bypass} if bypass else {})
        self.steps = list(steps or [])
        self.url = public_url or ""
        self.project_id = ""
        self.note = ""
        self._keys: dict[str, str] = {}
        self._rolling: bool | None = None

    @classmethod
    def from_spec(
        cls, spec: Spec, *, environ: dict[str, str], root: Path | None = None
    ) -> VercelDriver:
        vercel = spec.deploy.vercel
        token = environ.get(vercel.token_env, "")
        if not token:
            raise DriverError(
                f"${vercel.token_env} is not set; the vercel driver needs a Vercel access token",
                hint=f"create one at https://vercel.com/account/tokens, then export {vercel.token_env}",
            )
        return cls(
            vercel,
            token=token,
            team_id=vercel.team_id or environ.get(vercel.team_env, ""),
            steps=[s.weight for s in spec.deploy.steps],
            public_url=spec.url,
            bypass=environ.get(vercel.bypass_env, ""),
            root=root,
        )

    # ---- project -----------------------------------------------------------------------

    def prepare(self) -> None:
        self._project()

    def _project(self) -> dict[str, Any]:
        project = self.api.project(self.spec.project)
        self.project_id = str(project.get("id") or self.spec.project)
        return project

    def _pid(self) -> str:
        if not self.project_id:
            self._project()
        return self.project_id

    def production(self) -> str:
        """The id of the deployment the production domains serve ("" when none)."""
        targets = self._project().get("targets") or {}
        return str((targets.get("production") or {}).get("id") or "")

    def _rollout(self) -> dict[str, Any] | None:
        """The active rolling release, if any."""
        rollout = self.api.rolling_release(self._pid())
        if rollout and str(rollout.get("state", "")).upper() == "ACTIVE":
            return rollout
        return None

    @property
    def supports_weights(self) -> bool:  # type: ignore[override]
        if self.spec.rolling == "off":
            return False
        if self.spec.rolling == "on":
            return True
        if self._rolling is None:
            self._rolling = self.api.rolling_config(self._pid()) is not None
        return self._rolling

    # ---- deployments -------------------------------------------------------------------

    def _find(self, key: str) -> dict[str, Any] | None:
        """The deployment a release key runs as (tagged by tower, or adopted by id)."""
        if key.startswith(ADOPTED):
            return self.api.deployment(key[len(ADOPTED) :])
        known = self._keys.get(key)
        if known:
            return self.api.deployment(known)
        for deployment in self.api.deployments(self._pid(), limit=LISTED):
            if key_of(deployment) == key:
                dpl = str(deployment.get("uid") or deployment.get("id"))
                self._keys[key] = dpl
                return self.api.deployment(dpl)
        return None

    def artifact(self, release: ReleaseInfo) -> Artifact:
        """Create the release's deployment: the build Vercel keeps, its id the artifact."""
        deployment = self._create(release)
        return Artifact(
            kind="vercel-deployment",
            ref=str(deployment["id"]),
            detail={"url": deployment.get("url", ""), "source": self.spec.source},
        )

    def _create(self, release: ReleaseInfo) -> dict[str, Any]:
        if self.spec.source == "prebuilt":
            body = deployment_body(self.spec, release, files=self._upload())
        else:
            sha, _ = git_info(self.root)
            body = deployment_body(self.spec, release, sha=sha)
        deployment = self.api.create_deployment(body)
        self._keys[release.id] = str(deployment["id"])
        return deployment

    def _upload(self) -> list[dict[str, Any]]:
        """Upload the prebuilt output (each file once, by SHA1) and list it for the body."""
        output = self.root / self.spec.output
        if not (output / "config.json").is_file():
            raise DriverError(
                f"{output}/config.json not found: nothing prebuilt to deploy",
                hint='run `vercel build --prod` first, or set [deploy.vercel] source = "git"',
            )
        files = []
        for path in sorted(p for p in output.rglob("*") if p.is_file()):
            content = path.read_bytes()
            sha = hashlib.sha1(content, usedforsecurity=False).hexdigest()
            self.api.upload(content, sha)
            name = path.relative_to(self.root).as_posix()
            files.append({"file": name, "sha": sha, "size": len(content)})
        return files

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        """Wait until the release's deployment is ``READY`` (creating it if it has none)."""
        deployment = None
        if release.artifact:
            deployment = self.api.deployment(release.artifact)
        if deployment is None:
            deployment = self._find(release.id)
        if deployment is None:
            deployment = self._create(release)
        dpl = str(deployment["id"])
        deadline = self.clock.monotonic() + self.spec.build_timeout
        while True:
            state = state_of(deployment)
            if state == "READY":
                return [_instance(deployment)]
            if state in DEAD:
                raise DriverError(
                    f"Vercel deployment {dpl} ended {state}"
                    + (
                        f": {deployment.get('errorMessage')}"
                        if deployment.get("errorMessage")
                        else ""
                    ),
                    hint=f"see `vercel inspect {dpl} --logs`",
                )
            if self.clock.monotonic() >= deadline:
                raise DriverError(
                    f"Vercel deployment {dpl} is still {state} after {self.spec.build_timeout:g}s",
                    hint="raise [deploy.vercel] build_timeout, or see `vercel inspect --logs`",
                )
            self.clock.sleep(self.spec.poll)
            deployment = self.api.deployment(dpl) or {**deployment, "readyState": "DELETED"}

    def instances(self, release_id: str | None = None) -> list[Instance]:
        """READY deployments: one still building is not an instance yet (``start`` waits)."""
        if release_id is not None:
            deployment = self._find(release_id)
            ready = deployment is not None and state_of(deployment) == "READY"
            return [_instance(deployment)] if deployment is not None and ready else []
        return [
            _instance(d)
            for d in self.api.deployments(self._pid(), limit=LISTED)
            if (d.get("meta") or {}).get(RELEASE_KEY) and state_of(d) == "READY"
        ]

    def has_artifact(self, ref: str) -> bool:
        deployment = self.api.deployment(ref)
        return deployment is not None and state_of(deployment) == "READY"

    def adopt(self) -> str | None:
        """What production serves without a tower release (a `git push`) becomes one."""
        production = self.production()
        if not production:
            return None
        deployment = self.api.deployment(production)
        if deployment is None or (deployment.get("meta") or {}).get(RELEASE_KEY):
            return None
        return ADOPTED + production

    # ---- health ------------------------------------------------------------------------

    def site_url(self, deployment: dict[str, Any]) -> str:
        return self.spec.deployment_url.replace("{url}", str(deployment.get("url") or ""))

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        deployment = self.api.deployment(instance.id)
        if deployment is None:
            return Probe(False, f"deployment {instance.id} is gone", fatal=True)
        state = state_of(deployment)
        if state in DEAD:
            return Probe(False, f"deployment {instance.id} is {state}", fatal=True)
        if state != "READY":
            return Probe(False, f"deployment {instance.id} is {state}")
        url = self.site_url(deployment).rstrip("/") + path
        try:
            response = self.site.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return Probe(False, f"{url}: {type(exc).__name__}")
        status = response.status_code
        if status in (401, 403):
            return Probe(
                False,
                f"{url} answered {status}: deployment protection; export "
                f"{self.spec.bypass_env} (Protection Bypass for Automation)",
                retryable=False,
            )
        if status == 429 or "retry-after" in response.headers:
            return Probe(False, f"{url} answered {status}")
        if status >= 400:
            return Probe(False, f"{url} answered {status}", retryable=False)
        return Probe(True, f"READY, {url} answered {status}")

    # ---- traffic -----------------------------------------------------------------------

    def _dpl(self, key: str) -> str:
        deployment = self._find(key)
        if deployment is None:
            raise DriverError(f"no Vercel deployment of release {key}")
        return str(deployment["id"])

    def _until(self, what: str, done: Any) -> Any:
        """Poll ``done()`` until it returns something true, within ``promote_timeout``."""
        deadline = self.clock.monotonic() + self.spec.promote_timeout
        while True:
            value = done()
            if value:
                return value
            if self.clock.monotonic() >= deadline:
                raise DriverError(
                    f"Vercel accepted the change but {what} within {self.spec.promote_timeout:g}s",
                    hint="see `vercel promote status`",
                )
            self.clock.sleep(min(self.spec.poll, 0.5))

    def _promote(self, dpl: str) -> None:
        """Promote and wait until production serves ``dpl``; finish a rollout it starts."""
        if self.production() == dpl and self._rollout() is None:
            return
        self.api.promote(self._pid(), dpl)

        def served() -> bool:
            rollout = self._rollout()
            if rollout is not None and _canary(rollout) == dpl:
                self.api.complete_rolling(self._pid(), dpl)
                return False
            return self.production() == dpl

        self._until(f"production does not serve {dpl}", served)

    def _stage(self, dpl: str, weight: float) -> float:
        """Move the rolling release of ``dpl`` to the stage of ``weight``; its real share."""
        stages = stages_for(self.steps)
        percent = round(weight * 100, 2)
        index = next((i for i, s in enumerate(stages) if s["targetPercentage"] == percent), None)
        if index is None:
            raise DriverError(
                f"{percent:g}% is not one of the rolling-release stages "
                f"({', '.join(str(s['targetPercentage']) for s in stages)})"
            )
        rollout = self._rollout()
        if rollout is None or _canary(rollout) != dpl:
            if rollout is not None:
                raise DriverError(
                    f"a rolling release of {_canary(rollout)} is under way on Vercel",
                    hint="finish or roll it back in Vercel first",
                )
            config = self.api.rolling_config(self._pid())
            if config is None or _percents(config.get("stages")) != _percents(stages):
                self.api.set_rolling_config(self._pid(), stages)
                self.note = "rolling-release stages set from [[deploy.steps]]"
            self.api.promote(self._pid(), dpl)
            rollout = self._until(
                f"no rolling release of {dpl} started",
                lambda: (r := self._rollout()) is not None and _canary(r) == dpl and r,
            )
        assert rollout is not None
        current = _index(rollout)
        if current < index:
            self.api.approve_stage(self._pid(), dpl, index)
            rollout = self._until(
                f"the rolling release of {dpl} did not reach stage {index}",
                lambda: (r := self._rollout()) is not None and _index(r) >= index and r,
            )
        return float(((rollout or {}).get("activeStage") or {}).get("targetPercentage") or percent)

    def route(self, weights: dict[str, float]) -> dict[str, float] | None:
        self.note = ""
        if not weights:
            self.note = "Vercel always serves a production deployment; nothing was changed"
            return None
        new = next(iter(weights))
        dpl = self._dpl(new)
        if weights[new] >= 1.0:
            rollout = self._rollout()
            if rollout is not None and _canary(rollout) == dpl:
                self.api.complete_rolling(self._pid(), dpl)
                self._until(f"production does not serve {dpl}", lambda: self.production() == dpl)
                self.note = "rolling release completed"
            else:
                self._promote(dpl)
                self.note = f"promoted {dpl}"
            return {new: 1.0}
        percent = self._stage(dpl, weights[new])
        effective = {new: round(percent / 100, 6)}
        rest = [k for k in weights if k != new]
        if rest:
            effective[rest[0]] = round(1 - percent / 100, 6)
        self.note = (self.note + "; " if self.note else "") + f"rolling release at {percent:g}%"
        return effective

    def route_note(self) -> str:
        return self.note

    def rollback_to(self, release_id: str) -> None:
        """Instant Rollback to the release's deployment; it also ends a rolling release."""
        dpl = self._dpl(release_id)
        self.api.rollback(self._pid(), dpl)
        self._until(
            f"production does not serve {dpl}",
            lambda: self.production() == dpl and self._rollout() is None,
        )

    def routes(self) -> dict[str, float]:
        rollout = self._rollout()
        if rollout is not None:
            share = float((rollout.get("activeStage") or {}).get("targetPercentage") or 0) / 100
            canary = self.api.deployment(_canary(rollout))
            current = self.api.deployment(
                str((rollout.get("currentDeployment") or {}).get("id") or "")
            )
            split = {}
            if canary:
                split[key_of(canary)] = round(share, 6)
            if current:
                split[key_of(current)] = round(1 - share, 6)
            return split
        production = self.production()
        deployment = self.api.deployment(production) if production else None
        return {key_of(deployment): 1.0} if deployment else {}

    def stop(
        self,
        release_id: str,
        *,
        count: int = 0,
        ids: Any = (),
        drain: float = 30.0,
        after: float = 0.0,
    ) -> None:
        """Cancel a deployment still building; a built one is kept for Instant Rollback."""
        if after > 0:
            return
        deployment = self._find(release_id)
        if deployment is not None and state_of(deployment) in BUILDING:
            self.api.cancel(str(deployment["id"]))

    def public_url(self) -> str | None:
        return self.url or None

    def close(self) -> None:
        self.api.close()
        self.site.close()


def _canary(rollout: dict[str, Any]) -> str:
    return str((rollout.get("canaryDeployment") or {}).get("id") or "")


def _index(rollout: dict[str, Any]) -> int:
    return int((rollout.get("activeStage") or {}).get("index") or 0)


def _percents(stages: Any) -> list[float]:
    return [float(s.get("targetPercentage", 0)) for s in stages or []]


def _instance(deployment: dict[str, Any]) -> Instance:
    state = state_of(deployment)
    meta = deployment.get("meta") or {}
    return Instance(
        id=str(deployment.get("id") or deployment.get("uid")),
        release=key_of(deployment),
        version=str(meta.get(VERSION_KEY, "")),
        state="running" if state == "READY" else "stopped" if state in DEAD else "starting",
        healthy=state == "READY",
        detail={"url": deployment.get("url", ""), "readyState": state},
    )
