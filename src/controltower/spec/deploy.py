from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator

from controltower.conditions import ConditionText
from controltower.spec.base import Section
from controltower.units import Duration, Percent, parse_duration


class Strategy(StrEnum):
    IMMEDIATE = "immediate"
    ROLLING = "rolling"
    BLUEGREEN = "bluegreen"
    CANARY = "canary"


class DriverName(StrEnum):
    LOCAL = "local"
    FLY = "fly"
    VERCEL = "vercel"
    EXEC = "exec"


class HealthGateSpec(Section):
    """The new version's readiness must pass ``consecutive`` times within ``deadline``."""

    consecutive: int = Field(default=3, ge=1)
    deadline: Duration = 60.0
    interval: Duration = 0.5


class CanaryStepSpec(Section):
    """One canary step: a traffic weight and a pause; no pause means wait for promote."""

    weight: Percent
    pause: Duration | None = None


_WINDOWS = re.compile(r"^\s*(\d+)\s*windows?\s*$")


class AnalysisSpec(Section):
    """Conditions on live metrics of the new version, checked at each step.

    ``inconclusive_limit`` bounds how long a step may stay without a verdict (a
    duration such as ``"2m"``, or a count of windows: ``5`` or ``"5 windows"``);
    then ``on_inconclusive`` pauses the deploy (``tower deploy`` exits 3) or rolls
    it back. ``traffic`` names ``[[budgets.scenarios]]`` sent to the new release
    during analysis, at ``traffic_rate`` requests per second (0: enough for
    ``min_requests`` in each window). A web vital (``vitals.lcp.p75``) has a value
    once the release's beacons hold ``min_vitals_samples`` of it in the window.
    """

    conditions: list[ConditionText] = Field(default_factory=list)
    interval: Duration = 10.0
    failure_limit: int = Field(default=1, ge=1)
    min_requests: int = Field(default=20, ge=0)
    min_vitals_samples: int = Field(default=20, ge=1)
    inconclusive_limit: int | str = 5
    on_inconclusive: Literal["pause", "rollback"] = "pause"
    traffic: list[str] = Field(default_factory=list)
    traffic_rate: float = Field(default=0.0, ge=0)
    prometheus_url: str = ""
    prometheus_token_env: str = ""
    queries: dict[str, str] = Field(default_factory=dict)

    @field_validator("inconclusive_limit")
    @classmethod
    def _limit(cls, value: int | str) -> int | str:
        if isinstance(value, bool):
            raise ValueError("must be a count of windows (5) or a duration (2m)")
        if isinstance(value, int):
            if value < 1:
                raise ValueError(f"must be at least 1 window (got {value})")
            return value
        if _WINDOWS.match(value):
            return value
        if parse_duration(value) <= 0:
            raise ValueError(f"must be a positive duration (got {value!r})")
        return value

    def inconclusive_seconds(self) -> float:
        """The limit in seconds: a count of windows times ``interval``."""
        value = self.inconclusive_limit
        if isinstance(value, int):
            return value * self.interval
        matched = _WINDOWS.match(value)
        if matched:
            return int(matched.group(1)) * self.interval
        return parse_duration(value)


class SmokeSpec(Section):
    """``[[deploy.smoke]]``: a URL or path to request after the deploy, with conditions."""

    name: str = ""
    url: str = ""
    path: str = "/"
    method: str = "GET"
    conditions: list[ConditionText] = Field(default_factory=list)


class HooksSpec(Section):
    pre_deploy: list[str] = Field(default_factory=list)
    pre_switch: list[str] = Field(default_factory=list)
    post_deploy: list[str] = Field(default_factory=list)
    on_rollback: list[str] = Field(default_factory=list)
    timeout: Duration = 300.0


class LocalDriverSpec(Section):
    """The local driver: supervised processes behind tower's own proxy."""

    command: str = ""
    cwd: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    proxy_host: str = "127.0.0.1"
    proxy_port: int = Field(default=8000, ge=0, le=65535)
    state_dir: str = ".tower/local"
    artifact: list[str] = Field(default_factory=list)
    artifact_retain: int = Field(default=5, ge=1)


class FlyDriverSpec(Section):
    """The Fly Machines API. The token is read from ``token_env``, never from the spec."""

    app: str = ""
    image: str = ""
    api_url: str = "https://api.machines.dev"
    token_env: str = "FLY_API_TOKEN"
    region: str = ""
    internal_port: int = Field(default=0, ge=0, le=65535)
    wait_timeout: Duration = 60.0
    lease_ttl: int = Field(default=60, ge=1, le=3600)
    process_group: str = "app"
    propagation: Duration = 10.0
    critical_limit: int = Field(default=3, ge=1, le=100)
    volumes: Literal["new", "fork"] = "new"
    release_command: str = ""
    release_command_timeout: Duration = 300.0
    org: str = ""
    prometheus_url: str = ""


class VercelDriverSpec(Section):
    """The Vercel REST API. The token is read from ``token_env``, never from the spec.

    ``source``: ``git`` deploys ``git_ref`` (default: the commit being deployed) of
    the repository ``git_repo_id``; ``prebuilt`` uploads ``output`` (what ``vercel
    build`` wrote). ``deployment_url`` is where a deployment is reached for the
    health gate (``{url}``: the deployment's own host name). ``rolling``: canary
    steps through Vercel's rolling releases (``auto``: when the project has them
    configured).
    """

    project: str = ""
    team_id: str = ""
    api_url: str = "https://api.vercel.com"
    token_env: str = "VERCEL_TOKEN"
    team_env: str = "VERCEL_TEAM_ID"
    source: Literal["git", "prebuilt"] = "git"
    git_type: Literal["github", "gitlab", "bitbucket"] = "github"
    git_repo_id: str = ""
    git_ref: str = ""
    output: str = ".vercel/output"
    deployment_url: str = "https://{url}"
    bypass_env: str = "VERCEL_AUTOMATION_BYPASS_SECRET"
    build_timeout: Duration = 900.0
    promote_timeout: Duration = 180.0
    poll: Duration = 2.0
    rolling: Literal["auto", "on", "off"] = "auto"


class ExecDriverSpec(Section):
    """Shell commands for any other platform. Each gets ``TOWER_*`` variables in its environment."""

    build: str = ""
    deploy: str = ""
    switch: str = ""
    rollback: str = ""
    status: str = ""
    stop: str = ""
    timeout: Duration = 600.0
    state_file: str = ".tower/exec-state.json"


class DeploySpec(Section):
    """``[deploy]``: how a release reaches traffic, and when it goes back."""

    driver: DriverName = DriverName.LOCAL
    strategy: Strategy = Strategy.ROLLING
    instances: int = Field(default=2, ge=1)
    max_unavailable: int = Field(default=1, ge=1)
    gates: list[Literal[1, 2, 3]] = Field(default_factory=list)
    drain_timeout: Duration = 30.0
    warm_window: Duration = 600.0
    health: HealthGateSpec = Field(default_factory=HealthGateSpec)
    steps: list[CanaryStepSpec] = Field(default_factory=list)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    smoke: list[SmokeSpec] = Field(default_factory=list)
    hooks: HooksSpec = Field(default_factory=HooksSpec)
    local: LocalDriverSpec = Field(default_factory=LocalDriverSpec)
    fly: FlyDriverSpec = Field(default_factory=FlyDriverSpec)
    vercel: VercelDriverSpec = Field(default_factory=VercelDriverSpec)
    exec: ExecDriverSpec = Field(default_factory=ExecDriverSpec)
    lock_timeout: Duration = 60.0
