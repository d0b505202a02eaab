"""The deploy engine: a release moves through persisted states, one step at a time.

Every step is written to the store before it acts, so whatever kills ``tower``
leaves a row that says where it was. The next ``tower`` command calls
``recover``: a deploy stopped after its smoke checks passed is finished, any
other is rolled back. Traffic is only ever moved by one atomic ``route`` call.

Release status: ``running`` -> ``succeeded`` | ``rolling_back`` -> ``rolled_back`` | ``failed``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from controltower.clock import system_clock
from controltower.deploy import analysis
from controltower.deploy.drivers.base import Artifact, Driver, ReleaseInfo, TargetMetrics
from controltower.deploy.gates import run_gates
from controltower.deploy.git import git_info
from controltower.deploy.hooks import run_hook
from controltower.deploy.lock import DeployLock, lock_name
from controltower.deploy.smoke import run_smoke
from controltower.deploy.strategies import Step, StepKind, build_plan, commit_index, rollback
from controltower.deploy.traffic import TrafficRunner
from controltower.deploy.views import ReleaseView, StepLine, view
from controltower.exceptions import DeployError
from controltower.notify import Notification, enqueue
from controltower.notify.routing import channels_for
from controltower.redaction import Secrets
from controltower.spec import Spec
from controltower.spec.deploy import Strategy
from controltower.store import Store, default_owner, record_audit, service_id
from controltower.store.models.deploy import Release, ReleaseStep
from controltower.typing import Clock

__all__ = ["Aborted", "Engine", "GateFailed", "ReleaseView", "StepLine", "git_info", "view"]

ACTIVE = ("running", "rolling_back")
KILL_ENV = "TOWER_DEPLOY_KILL_AT"
_EVENTS = {
    "started": ("deploy.started", "info"),
    "succeeded": ("deploy.succeeded", "info"),
    "rolled_back": ("deploy.rolled_back", "warning"),
    "failed": ("deploy.failed", "critical"),
}


class GateFailed(DeployError):
    """A gate failed; the message names the condition and what was observed."""


class Aborted(DeployError):
    pass


class Paused(DeployError):
    """The deploy stops here, visibly paused, for `tower deploy promote` or `abort`."""


@dataclass(frozen=True)
class _StepContext:
    release_id: str
    step: Step
    info: ReleaseInfo
    old: str
    variables: dict[str, str]


def runs_as(release: Release) -> str:
    """The key instances and routes of this release go by (a rollback may reuse another's)."""
    return str(release.config.get("runs_as") or release.id)


class Engine:
    """Deploys, rollbacks and recovery for one service in one environment."""

    def __init__(
        self,
        spec: Spec,
        store: Store,
        driver: Driver,
        *,
        root: Path,
        clock: Clock = system_clock,
        actor: str | None = None,
        on_step: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.driver = driver
        self.root = root
        self.clock = clock
        self.actor = actor or default_owner()
        self.environment = spec.environment or "default"
        self.on_step = on_step or (lambda state, message: None)
        self.secrets = Secrets.gather(spec)
        self._given: dict[str, str] = {}
        self.lock = DeployLock(
            store,
            lock_name(spec.service.name, self.environment),
            clock=clock,
            ttl=spec.deploy.lock_timeout,
        )
        with store.session() as session:
            self.service_id = service_id(session, spec.service.name, self.environment)
        self._prepared = False

    # ---- queries -------------------------------------------------------------------------

    def releases(self, limit: int = 50) -> list[ReleaseView]:
        with self.store.session() as session:
            rows = session.scalars(
                select(Release)
                .where(Release.service_id == self.service_id)
                .order_by(Release.created_at.desc(), Release.id.desc())
                .limit(limit)
            ).all()
            return [view(r) for r in rows]

    def show(self, release_id: str) -> ReleaseView:
        with self.store.session() as session:
            release = self._find(session, release_id)
            steps = session.scalars(
                select(ReleaseStep)
                .where(ReleaseStep.release_id == release.id)
                .order_by(ReleaseStep.id)
            ).all()
            return view(release, list(steps))

    def current(self) -> ReleaseView | None:
        """The release that serves traffic: the newest that succeeded."""
        with self.store.session() as session:
            row = self._current(session)
            return view(row) if row else None

    def active(self) -> ReleaseView | None:
        with self.store.session() as session:
            row = session.scalar(
                select(Release)
                .where(Release.service_id == self.service_id, Release.status.in_(ACTIVE))
                .order_by(Release.created_at.desc())
            )
            return view(row) if row else None

    def _current(self, session: Session, before: datetime | None = None) -> Release | None:
        query = select(Release).where(
            Release.service_id == self.service_id, Release.status == "succeeded"
        )
        if before is not None:
            query = query.where(Release.created_at < before)
        return session.scalar(query.order_by(Release.created_at.desc(), Release.id.desc()))

    def _find(self, session: Session, release_id: str) -> Release:
        rows = session.scalars(
            select(Release).where(
                Release.service_id == self.service_id, Release.id.startswith(release_id)
            )
        ).all()
        if len(rows) != 1:
            what = "matches no release" if not rows else f"matches {len(rows)} releases"
            raise DeployError(
                f"release id {release_id!r} {what} of {self.spec.service.name}",
                hint="see `tower releases` for ids",
            )
        return rows[0]

    # ---- commands ------------------------------------------------------------------------

    def deploy(
        self,
        *,
        version: str = "",
        image: str = "",
        env: dict[str, str] | None = None,
        strategy: Strategy | None = None,
        git_commit: str | None = None,
    ) -> ReleaseView:
        """Create a release and run its plan; returns it in its final state."""
        chosen = strategy or self.spec.deploy.strategy
        if chosen is Strategy.CANARY and not self.driver.supports_weights:
            raise DeployError(
                f"the {self.driver.name} driver cannot split traffic by weight",
                hint="use --strategy bluegreen or rolling",
            )
        self._given = dict(env or {})
        self.secrets = self.secrets | Secrets.gather(environ={}, given=self._given)
        self._prepare()
        self.lock.acquire({"command": "deploy"})
        try:
            self._recover_locked(resume_paused=False)
            waiting = self.active()
            if waiting is not None:
                raise DeployError(
                    f"release {waiting.id} ({waiting.version}) of {self.spec.service.name} "
                    f"is {waiting.state}, waiting for a decision",
                    hint="finish it with `tower deploy promote` or `tower deploy abort` first",
                )
            commit, committed_at = git_info(self.root)
            if git_commit is not None:
                named, named_at = git_info(self.root, git_commit)
                commit, committed_at = (named, named_at) if named else (git_commit, None)
            self._check_traffic()
            release_id = _new_id(self.clock.now())
            version = version or image or self.spec.service.version
            artifact = self.driver.artifact(
                ReleaseInfo(id=release_id, version=version, image=image, env=env or {})
            )
            if artifact is not None:
                self.on_step("artifact", _artifact_text(artifact))
            with self.store.session() as session:
                previous = self._current(session) or self._adopted(session)
                serving = previous is not None and any(
                    i.state == "running" for i in self.driver.instances(runs_as(previous))
                )
                plan = build_plan(self.spec.deploy, chosen, has_previous=serving)
                release = self._create(
                    session,
                    release_id=release_id,
                    artifact=artifact,
                    kind="deploy",
                    version=version,
                    image=image,
                    env=env or {},
                    strategy=chosen.value,
                    plan=plan,
                    previous=previous,
                    commit=commit,
                    committed_at=committed_at,
                )
                release_id = release.id
            self._run(release_id)
            return self.show(release_id)
        finally:
            self.lock.release()

    def rollback(self, target_id: str | None = None) -> ReleaseView:
        """Go back to ``target_id`` or to the good release before the current one."""
        self._prepare()
        self.lock.acquire({"command": "rollback"})
        try:
            self._recover_locked(resume_paused=False)
            with self.store.session() as session:
                current = self._current(session)
                target: Release | None
                if target_id:
                    target = self._find(session, target_id)
                    if target.status != "succeeded":
                        raise DeployError(
                            f"release {target.id} ended {target.status}; "
                            "roll back to one that succeeded",
                            hint="see `tower releases`",
                        )
                else:
                    if current is None:
                        raise DeployError(
                            f"{self.spec.service.name} has no release yet; nothing to roll back"
                        )
                    target = self._current(session, before=current.created_at)
                    if target is None:
                        raise DeployError(
                            f"no good release before {current.id} to roll back to",
                            hint="name one: `tower rollback <release id>`",
                        )
                key = runs_as(target)
                reuse = any(i.state == "running" for i in self.driver.instances(key))
                if not reuse and target.artifact and not self.driver.has_artifact(target.artifact):
                    raise DeployError(
                        f"the artifact of release {target.id} ({target.artifact_digest}) "
                        "is no longer kept",
                        hint="retention pruned it; deploy that version again, or raise "
                        "[deploy.local] artifact_retain",
                    )
                if reuse:
                    self.driver.keep(key)
                    self._unwarm(session, key)
                plan = rollback(self.spec.deploy, reuse=reuse)
                release = self._create(
                    session,
                    release_id=_new_id(self.clock.now()),
                    artifact=_stored_artifact(target),
                    kind="rollback",
                    version=target.version,
                    image=target.image,
                    env=self._env(target),
                    strategy="rollback",
                    plan=plan,
                    previous=current,
                    commit=target.git_commit,
                    committed_at=target.committed_at,
                    runs=key if reuse else "",
                    target=target.id,
                )
                release_id = release.id
            self._run(release_id)
            return self.show(release_id)
        finally:
            self.lock.release()

    def request(self, what: str) -> ReleaseView:
        """``promote`` or ``abort`` the running deploy; finish it here if nobody runs it."""
        self._prepare()
        with self.store.session() as session:
            release = session.scalar(
                select(Release)
                .where(Release.service_id == self.service_id, Release.status == "running")
                .order_by(Release.created_at.desc())
            )
            if release is None:
                raise DeployError(f"no deploy of {self.spec.service.name} is running")
            release.request = what
            self._log(session, release, f"request:{what}", f"{what} requested by {self.actor}")
            record_audit(
                session,
                actor=self.actor,
                action=f"deploy.{what}",
                service=self.service_id,
                subject=release.id,
            )
            release_id = release.id
        if self.lock.holder() is not None:
            return self.show(release_id)
        self.lock.acquire({"command": what})
        try:
            if what == "abort":
                self._rollback(release_id, f"aborted by {self.actor}")
            else:
                self._run(release_id)
            return self.show(release_id)
        finally:
            self.lock.release()

    def recover(
        self, *, resume_paused: bool = False, resume_analysis: bool = False
    ) -> list[ReleaseView]:
        """Finish or roll back a deploy whose ``tower`` process died. Safe to call any time.

        ``resume_analysis`` (the reconciler in ``tower serve`` and ``tower monitor``):
        a deploy that died while a step was being analysed is analysed on, here, to
        its end: rolled back on a failed verdict, finished on passing ones.
        """
        if self.active() is None and not self._warm_due():
            return []
        if self.lock.holder() is not None:
            return []
        self._prepare()
        if not self.lock.try_acquire({"command": "recover"}):
            return []
        try:
            return self._recover_locked(
                resume_paused=resume_paused, resume_analysis=resume_analysis
            )
        finally:
            self.lock.release()

    # ---- internals -----------------------------------------------------------------------

    def _prepare(self) -> None:
        if not self._prepared:
            self.driver.prepare()
            self._prepared = True

    def _warm_due(self) -> bool:
        now = self.clock.now()
        with self.store.session() as session:
            return (
                session.scalar(
                    select(Release.id).where(
                        Release.service_id == self.service_id,
                        Release.warm_until.is_not(None),
                        Release.warm_until <= now,
                    )
                )
                is not None
            )

    def _recover_locked(
        self, *, resume_paused: bool, resume_analysis: bool = False
    ) -> list[ReleaseView]:
        recovered: list[str] = []
        with self.store.session() as session:
            rows = session.scalars(
                select(Release)
                .where(Release.service_id == self.service_id, Release.status.in_(ACTIVE))
                .order_by(Release.created_at)
            ).all()
            pending = [
                (r.id, r.status, r.state, r.step, r.config.get("plan", []), r.config.get("held"))
                for r in rows
            ]
        for release_id, status, state, index, raw_plan, held in pending:
            plan = [Step.from_dict(s) for s in raw_plan]
            step = plan[index] if index < len(plan) else None
            resumable = (
                resume_analysis
                and step is not None
                and step.kind == StepKind.ANALYSE
                and step.pause is not None
            )
            if status == "rolling_back":
                self._rollback(release_id, None)
            elif state == "paused" and not resume_paused and (held or not resumable):
                continue  # waiting for `tower deploy promote` or `abort`
            elif resumable:
                self._log_now(
                    release_id,
                    "recover",
                    "the deploying process stopped during analysis; analysing on here",
                )
                self._run(release_id)
            elif index > commit_index(plan):
                self._log_now(
                    release_id, "recover", "resuming: the new release had passed its checks"
                )
                self._run(release_id)
            else:
                label = plan[index].label if index < len(plan) else state
                self._rollback(
                    release_id, f"interrupted at {label} (the deploying process stopped)"
                )
            recovered.append(release_id)
        self._reap_warm()
        return [self.show(r) for r in recovered]

    def _reap_warm(self) -> None:
        now = self.clock.now()
        with self.store.session() as session:
            rows = session.scalars(
                select(Release).where(
                    Release.service_id == self.service_id,
                    Release.warm_until.is_not(None),
                    Release.warm_until <= now,
                )
            ).all()
            keys = [runs_as(r) for r in rows]
            for row in rows:
                row.warm_until = None
        routed = self._routes()
        for key in keys:
            if key not in routed:
                self.driver.stop(key, drain=self.spec.deploy.drain_timeout)

    def _unwarm(self, session: Session, key: str) -> None:
        """The release running as ``key`` takes traffic again: it must not be reaped."""
        for row in session.scalars(
            select(Release).where(
                Release.service_id == self.service_id, Release.warm_until.is_not(None)
            )
        ):
            if runs_as(row) == key:
                row.warm_until = None

    def _routes(self) -> dict[str, float]:
        try:
            return self.driver.routes()
        except DeployError:
            return {}

    def _adopted(self, session: Session) -> Release | None:
        """What serves without any tower release yet, recorded as the stable release.

        A first deploy then shifts traffic from it with the chosen strategy
        instead of replacing it all at once (the driver decides what it adopts).
        """
        key = self.driver.adopt()
        if not key:
            return None
        now = self.clock.now()
        release = Release(
            id=_new_id(now - timedelta(seconds=1)),
            service_id=self.service_id,
            kind="adopt",
            version="before tower",
            config={"env": {}, "plan": [], "runs_as": key, "previous_runs_as": "", "target": ""},
            actor=self.actor,
            strategy="adopt",
            driver=self.driver.name,
            status="succeeded",
            state="done",
            created_at=now - timedelta(microseconds=1),
            finished_at=now,
        )
        session.add(release)
        session.flush()
        self._log(session, release, "adopted", f"instances running as {key} adopted as stable")
        return release

    def _create(
        self,
        session: Session,
        *,
        release_id: str,
        artifact: Artifact | None,
        kind: str,
        version: str,
        image: str,
        env: dict[str, str],
        strategy: str,
        plan: list[Step],
        previous: Release | None,
        commit: str,
        committed_at: datetime | None,
        runs: str = "",
        target: str = "",
    ) -> Release:
        plain, hidden = self.secrets.split_env(env)
        config = {
            "env": plain,
            "secret_env": hidden,
            "plan": [s.to_dict() for s in plan],
            "runs_as": runs,
            "previous_runs_as": runs_as(previous) if previous else "",
            "target": target,
            "served_traffic": False,
            "deploy": self.secrets.redact_data(
                self.spec.deploy.model_dump(mode="json", exclude={"hooks"})
            ),
        }
        digest = hashlib.sha256(
            json.dumps(
                {
                    "version": version,
                    "image": image,
                    "env": plain,
                    "secret_env": hidden,
                    "deploy": config["deploy"],
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:16]
        now = self.clock.now()
        release = Release(
            id=release_id,
            service_id=self.service_id,
            kind=kind,
            version=version,
            image=image,
            artifact=artifact.ref if artifact else "",
            artifact_kind=artifact.kind if artifact else "",
            artifact_digest=artifact.digest if artifact else "",
            artifact_size=artifact.size if artifact else None,
            config_hash=digest,
            config=config,
            actor=self.actor,
            strategy=strategy,
            driver=self.driver.name,
            git_commit=commit,
            committed_at=committed_at,
            previous_id=previous.id if previous else "",
            status="running",
            state="created",
            step=0,
            created_at=now,
        )
        session.add(release)
        session.flush()
        self._log(
            session,
            release,
            "created",
            f"{kind} of {version} ({strategy}, plan: {', '.join(s.label for s in plan)})",
        )
        if artifact is not None:
            self._log(
                session,
                release,
                "artifact",
                _artifact_text(artifact),
                {"ref": artifact.ref, "digest": artifact.digest, "size": artifact.size}
                | artifact.detail,
            )
        self._event(session, release, "started")
        return release

    def _run(self, release_id: str) -> None:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            plan = [Step.from_dict(s) for s in release.config["plan"]]
            start = release.step
            if release.state == "paused":
                start = release.step + 1 if release.request == "promote" else release.step
                if release.request == "promote":
                    release.request = ""
                    self._log(session, release, "analyse", "promoted by request")
        for index in range(start, len(plan)):
            step = plan[index]
            with self.store.session() as session:
                release = session.get(Release, release_id)
                assert release is not None
                if release.request == "abort":
                    release.request = ""
                    session.commit()
                    self._rollback(release_id, f"aborted by request at {step.label}")
                    return
                release.step = index
                release.state = step.label
                began = dict(release.config.get("step_started") or {})
                if str(index) not in began:  # a resumed step keeps its first start
                    began[str(index)] = self.clock.now().isoformat()
                    release.config = {**release.config, "step_started": began}
                self._log(session, release, step.label, "started")
            self._kill_point(step.label, index)
            try:
                self._execute(release_id, step)
            except Paused as exc:
                self._set_state(release_id, "paused", exc.message, held=True)
                return
            except DeployError as exc:
                self._rollback(release_id, f"{step.label}: {exc.message}")
                return
            self.lock.heartbeat()
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            release.status = "succeeded"
            release.state = "done"
            release.step = len(plan)
            release.request = ""
            release.finished_at = self.clock.now()
            self._log(session, release, "succeeded", f"{release.version} serves all traffic")
            self._event(session, release, "succeeded")
        self._kill_point("done")
        self._prune_artifacts(release_id)

    def _prune_artifacts(self, release_id: str) -> None:
        """Keep the artifacts of the last ``artifact_retain`` releases and of any that runs."""
        retain = self.spec.deploy.local.artifact_retain
        with self.store.session() as session:
            rows = session.execute(
                select(Release.id, Release.artifact, Release.config)
                .where(Release.service_id == self.service_id, Release.artifact != "")
                .order_by(Release.created_at.desc(), Release.id.desc())
            ).all()
        running = {i.release for i in self.driver.instances()} | set(self._routes())
        keep: list[str] = []
        for rid, ref, config in rows:
            key = str((config or {}).get("runs_as") or rid)
            if ref not in keep and (len(keep) < retain or key in running or rid == release_id):
                keep.append(ref)
        try:
            removed = self.driver.prune_artifacts(keep)
        except (OSError, DeployError) as exc:
            self._log_now(release_id, "artifact", f"pruning old artifacts failed: {exc}")
            return
        if removed:
            self._log_now(
                release_id,
                "artifact",
                f"pruned {len(removed)} artifact(s) beyond the last {retain}",
            )

    def _info(self, release: Release) -> ReleaseInfo:
        return ReleaseInfo(
            id=runs_as(release),
            version=release.version,
            image=release.image,
            env=self._env(release, strict=False),
            artifact=release.artifact,
        )

    def _env(self, release: Release, *, strict: bool = True) -> dict[str, str]:
        """The release's variables: those stored, and its secrets from ``--set`` or the
        environment (only their names are stored)."""
        env = {str(k): str(v) for k, v in release.config.get("env", {}).items()}
        missing: list[str] = []
        for name in release.config.get("secret_env", []):
            value = self._given.get(name, os.environ.get(name))
            if value is None:
                missing.append(name)
            else:
                env[name] = value
        if missing and strict:
            raise DeployError(
                f"release {release.id} was deployed with the secret(s) {', '.join(missing)}, "
                "whose values tower never stores",
                hint=f"export {' '.join(missing)} and run the command again",
            )
        return env

    def _execute(self, release_id: str, step: Step) -> None:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            if step.kind == StepKind.START:
                self._env(release)  # the values of its secrets must be at hand
            context = _StepContext(
                release_id=release_id,
                step=step,
                info=self._info(release),
                old=str(release.config.get("previous_runs_as") or ""),
                variables=self._variables(release),
            )
        try:
            handler = self._handlers[StepKind(step.kind)]
        except ValueError:
            raise DeployError(f"unknown step {step.kind!r}") from None
        handler(context)

    @property
    def _handlers(self) -> dict[StepKind, Callable[[_StepContext], None]]:
        return {
            StepKind.GATES: self._step_gates,
            StepKind.HOOKS: lambda c: self._hooks(
                c.release_id, c.step.phase, c.variables, fatal=True
            ),
            StepKind.START: self._step_start,
            StepKind.HEALTH: lambda c: self._health(c.release_id, c.info.id),
            StepKind.ROUTE: self._step_route,
            StepKind.ANALYSE: lambda c: self._analyse(c.release_id, c.info, c.old, c.step),
            StepKind.SMOKE: lambda c: self._smoke(c.release_id),
            StepKind.STOP_OLD: self._step_stop_old,
            StepKind.RETIRE: self._step_retire,
        }

    def _step_gates(self, c: _StepContext) -> None:
        outcome = run_gates(self.spec, root=self.root, store=self.store)
        self._log_now(
            c.release_id,
            "gates",
            outcome.summary,
            {"failing": outcome.failing, "check_run": outcome.run_id},
        )
        if not outcome.passed:
            raise GateFailed(outcome.summary)

    def _step_start(self, c: _StepContext) -> None:
        have = len(self.driver.instances(c.info.id))
        wanted = sum(
            s.count
            for s in self._plan(c.release_id)[: self._index(c.release_id) + 1]
            if s.kind == StepKind.START
        )
        count = max(0, min(c.step.count, wanted - have))
        if count:
            started = self.driver.start(c.info, count)
            self._log_now(
                c.release_id,
                "start",
                f"started {len(started)} instance(s): " + ", ".join(i.id for i in started),
            )

    def _step_route(self, c: _StepContext) -> None:
        weights = {c.info.id: c.step.weight}
        if c.step.weight < 1.0 and c.old:
            weights[c.old] = round(1.0 - c.step.weight, 6)
        if c.step.weight > 0:
            self._mark_served(c.release_id)
        effective = self.driver.route(weights)
        message = "traffic: " + _split(weights)
        if effective is not None and effective != weights:
            message += f" (effective: {_split(effective)})"
        note = self.driver.route_note()
        if note:
            message += f"; {note}"
        self._log_now(c.release_id, "route", message, {"weights": weights, "effective": effective})

    def _mark_served(self, release_id: str) -> None:
        """Written before traffic moves: DORA counts a failed change only once it served."""
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            if not release.config.get("served_traffic"):
                release.config = {**release.config, "served_traffic": True}

    def _step_stop_old(self, c: _StepContext) -> None:
        if c.old and c.old != c.info.id:
            self.driver.stop(c.old, count=c.step.count, drain=self.spec.deploy.drain_timeout)
            self._log_now(
                c.release_id, "stop_old", f"drained and stopped {c.step.count or 'all'} of {c.old}"
            )

    def _step_retire(self, c: _StepContext) -> None:
        deploy = self.spec.deploy
        if not c.old or c.old == c.info.id:
            return
        self.driver.stop(c.old, drain=deploy.drain_timeout, after=deploy.warm_window)
        with self.store.session() as session:
            release = session.get(Release, c.release_id)
            assert release is not None
            if release.previous_id:
                previous = session.get(Release, release.previous_id)
                if previous is not None:
                    previous.warm_until = self.clock.now() + timedelta(seconds=deploy.warm_window)
        self._log_now(
            c.release_id,
            "retire",
            f"{c.old} kept warm for {deploy.warm_window:g}s for instant rollback",
        )

    def _plan(self, release_id: str) -> list[Step]:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            return [Step.from_dict(s) for s in release.config["plan"]]

    def _index(self, release_id: str) -> int:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            return release.step

    def _variables(self, release: Release) -> dict[str, str]:
        return {
            "release_id": release.id,
            "version": release.version,
            "image": release.image,
            "service": self.spec.service.name,
            "environment": self.environment,
            "strategy": release.strategy,
            "previous_release_id": release.previous_id,
            "git_commit": release.git_commit,
            "actor": release.actor,
        }

    def _hooks(
        self, release_id: str, phase: str, variables: dict[str, str], *, fatal: bool
    ) -> None:
        commands: list[str] = getattr(self.spec.deploy.hooks, phase)
        if not commands:
            self._log_now(release_id, f"hooks:{phase}", "skipped (no hooks)")
            return
        for command in commands:
            result = run_hook(
                command,
                cwd=self.root,
                variables={**variables, "phase": phase},
                timeout=self.spec.deploy.hooks.timeout,
            )
            detail = {"command": command, "exit_code": result.exit_code, "output": result.output}
            message = f"{command!r} exited {result.exit_code}"
            self._log_now(release_id, f"hooks:{phase}", message, detail)
            if not result.ok and fatal:
                tail = result.output.splitlines()[-1] if result.output else ""
                raise GateFailed(message + (f": {tail}" if tail else ""))

    def _wait(self, release_id: str, seconds: float) -> str:
        """Sleep up to ``seconds``, waking for promote/abort requests; returns the request."""
        end = self.clock.monotonic() + seconds
        while True:
            with self.store.session() as session:
                request = session.scalar(select(Release.request).where(Release.id == release_id))
            if request:
                return str(request)
            left = end - self.clock.monotonic()
            if left <= 0:
                return ""
            self.lock.heartbeat()
            self.clock.sleep(min(0.25, left))

    def _health(self, release_id: str, key: str) -> None:
        """Every instance passes readiness ``consecutive`` times in a row within the deadline.

        ``consecutive`` definite failing answers in a row (not a refused connection
        or a ``Retry-After``) fail the gate at once; the deadline bounds slow starters.
        """
        gate = self.spec.deploy.health
        path = self.spec.health.readiness
        instances = [i for i in self.driver.instances(key) if i.state != "stopped"]
        if not instances:
            raise GateFailed(f"no instance of {key} is running")
        passes = {i.id: 0 for i in instances}
        refused = {i.id: 0 for i in instances}
        last = {i.id: "not probed" for i in instances}
        deadline = self.clock.monotonic() + gate.deadline
        delay = gate.interval
        while True:
            backoff = False
            for instance in instances:
                if passes[instance.id] >= gate.consecutive:
                    continue
                probe = self.driver.probe(instance, path, self.spec.health.timeout)
                last[instance.id] = probe.detail
                if probe.ok:
                    passes[instance.id] += 1
                    refused[instance.id] = 0
                    continue
                passes[instance.id] = 0
                if probe.fatal:
                    raise GateFailed(f"instance {instance.id}: {probe.detail}")
                if probe.retryable:
                    refused[instance.id] = 0
                    backoff = True
                    continue
                refused[instance.id] += 1
                if refused[instance.id] == 1:
                    self._log_now(
                        release_id, "health", f"instance {instance.id} answered {probe.detail}"
                    )
                if refused[instance.id] >= gate.consecutive:
                    raise GateFailed(
                        f"instance {instance.id} failed readiness {path} "
                        f"{refused[instance.id]} times in a row with a definite answer "
                        f"(last: {probe.detail}); not waiting for the {gate.deadline:g}s deadline"
                    )
            if all(n >= gate.consecutive for n in passes.values()):
                self._log_now(
                    release_id,
                    "health",
                    f"{len(instances)} instance(s) passed readiness {path} "
                    f"{gate.consecutive} times in a row",
                )
                return
            if self.clock.monotonic() >= deadline:
                worst = min(passes, key=lambda k: passes[k])
                raise GateFailed(
                    f"instance {worst} passed readiness {path} "
                    f"{passes[worst]} of {gate.consecutive} times in a row within "
                    f"{gate.deadline:g}s (last: {last[worst]})"
                )
            delay = min(delay * 1.5, 2.0) if backoff else gate.interval
            self.lock.heartbeat()
            self.clock.sleep(min(delay, max(0.0, deadline - self.clock.monotonic())))

    def _verdict(
        self,
        release_id: str,
        info: ReleaseInfo,
        old: str,
        window: float,
        traffic: TrafficRunner | None,
    ) -> analysis.Verdict:
        spec = self.spec.deploy.analysis
        new_metrics = self.driver.metrics(info.id, window)
        if traffic is not None:
            new_metrics = analysis.combine(new_metrics, traffic.window(window))
        stable = self.driver.metrics(old, window) if old and old != info.id else None
        instances = "|".join(i.id for i in self.driver.instances(info.id))
        extra, problems = analysis.prometheus_values(
            spec, {"release": info.id, "version": info.version, "instances": instances}
        )
        if analysis.uses_ingest(spec) or analysis.uses_vitals(spec):
            extra.update(self._ingest_values(release_id, window, new_metrics))
        context = analysis.build_context(new_metrics, stable, extra)
        if extra and "source" not in context:
            context["source"] = f"Prometheus {spec.prometheus_url}"
        verdict = analysis.evaluate(spec, context)
        if problems and verdict.outcome == analysis.PASS:
            return analysis.Verdict(
                analysis.INCONCLUSIVE, "; ".join(problems), verdict.results, verdict.context
            )
        return verdict

    def _ingest_values(
        self, release_id: str, window: float, metrics: TargetMetrics | None
    ) -> dict[str, Any]:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            names = {release.id, release.version, runs_as(release)} - {""}
            since = release.created_at
        window_since = self.clock.now() - timedelta(seconds=window)
        values = analysis.ingest_values(
            self.store,
            names,
            release_since=since,
            window_since=window_since,
            requests=metrics.requests if metrics else None,
        )
        spec = self.spec.deploy.analysis
        if analysis.uses_vitals(spec):
            values.update(
                analysis.vitals_values(
                    self.store,
                    names,
                    window_since=window_since,
                    min_samples=spec.min_vitals_samples,
                )
            )
        return values

    def _check_traffic(self) -> None:
        spec = self.spec.deploy.analysis
        known = {s.name for s in self.spec.budgets.scenarios}
        unknown = [name for name in spec.traffic if name not in known]
        if unknown:
            raise DeployError(
                f"[deploy.analysis] traffic names {', '.join(map(repr, unknown))}, "
                "not a [[budgets.scenarios]] name",
                hint="known scenarios: " + (", ".join(sorted(known)) or "none"),
            )

    def _traffic(self, info: ReleaseInfo) -> TrafficRunner | None:
        spec = self.spec.deploy.analysis
        if not spec.traffic or not spec.conditions:
            return None
        targets = [
            f"http://{i.address}"
            for i in self.driver.instances(info.id)
            if i.state == "running" and i.address
        ]
        if not targets and self.spec.url:
            targets = [self.spec.url]
        if not targets:
            return None
        rate = spec.traffic_rate or max(5.0, 2.0 * spec.min_requests / max(spec.interval, 0.1))
        scenarios = [s for s in self.spec.budgets.scenarios if s.name in spec.traffic]
        return TrafficRunner(targets, scenarios, rate=rate, clock=self.clock).start()

    def _analyse(self, release_id: str, info: ReleaseInfo, old: str, step: Step) -> None:
        """Hold the step, judging the conditions over every window until the pause is over.

        Windows are counted from the step's start (``interval`` apart), and the
        window that ends with the pause is always judged, however late the timer
        wakes. The step passes when its pause is over and the last verdict passed
        (or there are no conditions). A failed verdict counts toward the failure
        limit. Inconclusive verdicts (too little traffic) keep the step waiting
        up to ``inconclusive_limit``, then ``on_inconclusive`` pauses the deploy
        or rolls it back. A step without a pause waits for `tower deploy promote`
        while the analysis keeps running. Promote and abort requests end the wait.
        """
        spec = self.spec.deploy.analysis
        traffic = self._traffic(info)
        try:
            self._hold(release_id, info, old, step, traffic)
        finally:
            if traffic is not None:
                summary = traffic.stop()
                self._log_now(release_id, "analyse", f"synthetic traffic: {summary}")
        del spec

    def _hold(
        self,
        release_id: str,
        info: ReleaseInfo,
        old: str,
        step: Step,
        traffic: TrafficRunner | None,
    ) -> None:
        spec = self.spec.deploy.analysis
        slack = 1e-3
        started = self.clock.monotonic() - self._step_elapsed(release_id, step)
        pause_end = None if step.pause is None else started + step.pause
        next_due = started + spec.interval
        limit = spec.inconclusive_seconds()
        undecided_since = started
        failures = 0
        paused = False
        verdict: analysis.Verdict | None = None
        last_eval = started
        if step.pause is None:
            paused = True
            self._set_state(
                release_id,
                "paused",
                "waiting for `tower deploy promote`"
                + (" (analysis keeps running)" if spec.conditions else ""),
            )
        while True:
            now = self.clock.monotonic()
            due: list[float] = []
            if spec.conditions:
                due.append(next_due)
                if step.pause is not None:
                    due.append(undecided_since + limit)
            if pause_end is not None:
                if now < pause_end:
                    due.append(pause_end)
                elif not spec.conditions or last_eval < pause_end - slack:
                    due.append(now)  # over already (a resumed step): judge or end at once
            wait = min(due) - now if due else 3600.0
            request = self._wait(release_id, max(0.0, wait))
            if request == "abort":
                self._clear_request(release_id)
                raise Aborted("aborted by request")
            if request == "promote":
                self._clear_request(release_id)
                self._log_now(release_id, "analyse", "promoted by request")
                return
            now = self.clock.monotonic()
            pause_over = pause_end is not None and now >= pause_end - slack
            final_window = pause_over and last_eval < pause_end - slack  # type: ignore[operator]
            if spec.conditions and (now >= next_due - slack or final_window):
                window = max(min(spec.interval, now - started), 1.0)
                verdict = self._verdict(release_id, info, old, window, traffic)
                last_eval = now
                late = now - next_due
                while next_due <= now + slack:
                    next_due += spec.interval
                self._log_now(
                    release_id,
                    "analyse",
                    f"{verdict.outcome}: {verdict.message} "
                    f"(metrics: {verdict.context.get('source') or 'no metrics source'})",
                    {
                        **verdict.context,
                        "window": round(window, 3),
                        "late": round(late, 3),
                        "took": round(self.clock.monotonic() - now, 3),
                    },
                )
                if verdict.outcome == analysis.FAIL:
                    failures += 1
                    if failures >= spec.failure_limit:
                        raise GateFailed(
                            f"analysis failed {failures} time(s) "
                            f"(limit {spec.failure_limit}): {verdict.message}"
                        )
                if verdict.outcome != analysis.INCONCLUSIVE:
                    undecided_since = now
            if pause_over and (
                not spec.conditions or (verdict and verdict.outcome == analysis.PASS)
            ):
                return
            if (
                spec.conditions
                and step.pause is not None
                and now - undecided_since >= limit - slack
            ):
                what = verdict.message if verdict else "no verdict"
                text = f"no verdict for {now - undecided_since:.0f}s ({what})"
                if spec.on_inconclusive == "rollback":
                    raise GateFailed(
                        f"{text}; inconclusive_limit reached, rolling back as configured"
                    )
                raise Paused(
                    f"paused: {text}; inconclusive_limit reached. Decide with "
                    "`tower deploy promote` or `tower deploy abort`"
                )
            if pause_over and not paused:
                paused = True
                self._set_state(
                    release_id,
                    "paused",
                    f"paused, {verdict.message if verdict else 'no verdict yet'}; "
                    "waiting for traffic or `tower deploy promote`",
                )

    def _step_elapsed(self, release_id: str, step: Step) -> float:
        """Seconds since the current step first started: a resumed step goes on, not over.

        The router counted the traffic while nobody watched, so the first window of
        a step resumed by the reconciler is judged as soon as it is due.
        """
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            raw = (release.config.get("step_started") or {}).get(str(release.step))
        if not raw:
            return 0.0
        elapsed = (self.clock.now() - datetime.fromisoformat(str(raw))).total_seconds()
        limit = step.pause if step.pause is not None else elapsed
        return max(0.0, min(elapsed, limit))

    def _clear_request(self, release_id: str) -> None:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            release.request = ""
            if release.state == "paused":
                release.state = Step.from_dict(release.config["plan"][release.step]).label

    def _set_state(self, release_id: str, state: str, message: str, *, held: bool = False) -> None:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            release.state = state
            if held != bool(release.config.get("held")):
                release.config = {**release.config, "held": held}
            self._log(session, release, state, message)

    def _smoke(self, release_id: str) -> None:
        checks = self.spec.deploy.smoke
        if not checks:
            self._log_now(release_id, "smoke", "skipped (no smoke checks)")
            return
        base = self.driver.public_url() or self.spec.url
        with httpx.Client(timeout=10.0, follow_redirects=True) as client:
            for smoke in checks:
                result = run_smoke(smoke, base, client)
                self._log_now(release_id, "smoke", result.message)
                if not result.ok:
                    raise GateFailed(result.message)

    def _rollback(self, release_id: str, reason: str | None) -> None:
        """Put all traffic back on the previous release and stop the new one."""
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            if reason is not None:
                release.reason = self.secrets.redact(reason)
            release.status = "rolling_back"
            release.state = "rolling_back"
            release.request = ""
            self._log(session, release, "rolling_back", release.reason)
            record_audit(
                session,
                actor=self.actor,
                action="deploy.rolling_back",
                service=self.service_id,
                subject=release.id,
                detail={"reason": release.reason},
            )
            info = self._info(release)
            old = str(release.config.get("previous_runs_as") or "")
            previous = session.get(Release, release.previous_id) if release.previous_id else None
            previous_info = self._info(previous) if previous else None
            variables = self._variables(release)
        self._kill_point("rolling_back")
        outcome, note = "rolled_back", ""
        try:
            if previous_info is not None and old and old != info.id:
                running = [i for i in self.driver.instances(old) if i.state == "running"]
                self.driver.keep(old)
                with self.store.session() as session:
                    self._unwarm(session, old)
                if not running:
                    self._log_now(release_id, "rolling_back", f"starting {old} again")
                    self.driver.start(previous_info, self.spec.deploy.instances)
                    self._health(release_id, old)
                self.driver.rollback_to(old)
                self._log_now(release_id, "rolling_back", f"traffic: {old} 100%")
                missing = self.spec.deploy.instances - len(running) if running else 0
                if missing > 0:
                    self._top_up(release_id, previous_info, missing)
            elif old == info.id:
                outcome, note = "failed", "the release it would go back to is this one"
            else:
                self.driver.route({})
                outcome, note = "failed", "no earlier release to go back to"
            if old != info.id:
                self.driver.stop(info.id, drain=self.spec.deploy.drain_timeout)
        except DeployError as exc:
            outcome, note = "failed", f"rollback could not finish: {exc.message}"
            if info.id not in self._routes():
                with contextlib.suppress(DeployError):
                    self.driver.stop(info.id, drain=self.spec.deploy.drain_timeout)
        with contextlib.suppress(DeployError):
            self._hooks(release_id, "on_rollback", variables, fatal=False)
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            release.status = outcome
            release.state = outcome
            release.finished_at = self.clock.now()
            if note:
                release.reason = self.secrets.redact(f"{release.reason} ({note})")
            self._log(session, release, outcome, release.reason)
            self._event(session, release, outcome)

    def _top_up(self, release_id: str, previous: ReleaseInfo, missing: int) -> None:
        """Start the instances a rolling deploy had already stopped, once traffic is back."""
        self._log_now(
            release_id, "rolling_back", f"starting {missing} more instance(s) of {previous.id}"
        )
        started = self.driver.start(previous, missing)
        try:
            self._health(release_id, previous.id)
        except GateFailed as exc:
            for instance in started:
                self.driver.stop(previous.id, ids=[instance.id], drain=0.0)
            self._log_now(release_id, "rolling_back", f"not added: {exc.message}")
            return
        self.driver.rollback_to(previous.id)

    def _kill_point(self, label: str, index: int | None = None) -> None:
        """Fault injection for the crash tests: ``TOWER_DEPLOY_KILL_AT=<step label>``.

        ``#<n>`` names the n-th step of the plan (from 0), for a label that repeats.
        """
        wanted = os.environ.get(KILL_ENV)
        if wanted and (wanted == label or (index is not None and wanted == f"#{index}")):
            os.kill(os.getpid(), signal.SIGKILL)

    def _log(
        self,
        session: Session,
        release: Release,
        state: str,
        message: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        message = self.secrets.redact(message)
        session.add(
            ReleaseStep(
                release_id=release.id,
                at=self.clock.now(),
                state=state,
                message=message,
                detail=self.secrets.redact_data(_jsonable(detail or {})),
            )
        )
        self.on_step(state, message)

    def _log_now(
        self, release_id: str, state: str, message: str, detail: dict[str, Any] | None = None
    ) -> None:
        with self.store.session() as session:
            release = session.get(Release, release_id)
            assert release is not None
            self._log(session, release, state, message, detail)

    def _event(self, session: Session, release: Release, event: str) -> None:
        kind, severity = _EVENTS[event]
        record_audit(
            session,
            actor=self.actor,
            action=kind,
            service=self.service_id,
            subject=release.id,
            detail={
                "version": release.version,
                "strategy": release.strategy,
                "kind": release.kind,
                "reason": release.reason,
            },
        )
        labels = {"service": self.spec.service.name, "kind": "deploy"}
        channels = channels_for(self.spec.alerts, severity=severity, labels=labels)
        if not channels:
            return
        verb = {
            "started": "started",
            "succeeded": "succeeded",
            "rolled_back": "was rolled back",
            "failed": "failed",
        }[event]
        enqueue(
            session,
            Notification(
                key=f"deploy:{release.id}:{event}",
                kind=kind,
                title=f"{self.spec.service.name}: {release.kind} of {release.version} {verb}",
                text=release.reason,
                severity=severity,
                service=self.spec.service.name,
                environment=self.environment,
                fields={
                    "release": release.id,
                    "version": release.version,
                    "strategy": release.strategy,
                    "actor": release.actor,
                },
                labels=labels,
            ),
            channels,
        )


def _new_id(now: datetime) -> str:
    return f"r{now.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _stored_artifact(release: Release) -> Artifact | None:
    if not release.artifact:
        return None
    return Artifact(
        kind=release.artifact_kind,
        ref=release.artifact,
        digest=release.artifact_digest,
        size=release.artifact_size,
        detail={"from": release.id},
    )


def _artifact_text(artifact: Artifact) -> str:
    size = f", {_bytes(artifact.size)}" if artifact.size is not None else ""
    files = artifact.detail.get("files")
    count = f", {files} files" if files is not None else ""
    return f"{artifact.kind} {artifact.digest or artifact.ref}{count}{size}"


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _split(weights: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in weights.items())


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(detail, default=str))
    return data
