"""The driver interface: a small abstract class, like httpx's ``BaseTransport``.

The engine decides; a driver acts. Every method is one action on the platform
(start instances of a release, probe one, set the traffic split, stop a
release) and returns plain data. Waiting, retries, gates and rollback belong to
the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReleaseInfo:
    """What a driver needs to run a release."""

    id: str
    version: str
    image: str = ""
    env: dict[str, str] = field(default_factory=dict)
    artifact: str = ""


@dataclass(frozen=True)
class Artifact:
    """The immutable thing a release runs: a snapshot, an image, what a build printed.

    ``ref`` is what the driver runs it from (a snapshot's folder, ``image@sha256:…``,
    a reference); ``digest`` identifies its content (``sha256:…``; empty when the
    platform gives none); ``size`` is in bytes when known.
    """

    kind: str
    ref: str
    digest: str = ""
    size: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    id: str
    release: str
    version: str = ""
    state: str = "starting"
    healthy: bool | None = None
    address: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """One readiness probe of one instance.

    ``fatal``: the instance can never pass (it is gone, it crash-loops).
    ``retryable``: a failure that a slow starter gives (no answer yet, a 429 or a
    ``Retry-After``); a definite failing answer (a 503 without ``Retry-After``) is
    not, and ``consecutive`` of those in a row fail the health gate at once.
    """

    ok: bool
    detail: str = ""
    fatal: bool = False
    retryable: bool = True


@dataclass(frozen=True)
class TargetMetrics:
    """Requests a release answered over a window, as the router saw them."""

    requests: int
    errors: int
    error_rate: float
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    source: str = ""

    def context(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
        }
        if self.source:
            data["source"] = self.source
        for name in ("p50", "p95", "p99"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


class Driver(ABC):
    """A platform tower can deploy to. Subclasses implement the abstract methods."""

    name: str = ""
    supports_weights: bool = True

    def prepare(self) -> None:
        """Make sure the platform side is reachable (start an agent, check a token)."""
        return None

    @abstractmethod
    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        """Start ``count`` instances of ``release`` that receive no traffic yet."""

    @abstractmethod
    def instances(self, release_id: str | None = None) -> list[Instance]:
        """Instances that run, of one release or of all."""

    @abstractmethod
    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        """Ask one instance once whether it is ready."""

    @abstractmethod
    def route(self, weights: dict[str, float]) -> dict[str, float] | None:
        """Split traffic between releases by weight (summing to 1), in one atomic change.

        The first key is the release traffic moves to. Returns the split the
        platform really applies when it differs from ``weights`` (None: as asked).
        """

    @abstractmethod
    def stop(
        self,
        release_id: str,
        *,
        count: int = 0,
        ids: Sequence[str] = (),
        drain: float = 30.0,
        after: float = 0.0,
    ) -> None:
        """Drain and stop instances of a release, now or ``after`` seconds from now.

        ``ids`` names the instances; else the first ``count`` of them (0: all).
        """

    def artifact(self, release: ReleaseInfo) -> Artifact | None:
        """Make (or find) the artifact of a new release, at deploy time.

        None: the platform keeps no artifact of tower's, the version is only a label.
        """
        return None

    def has_artifact(self, ref: str) -> bool:
        """Whether the artifact ``ref`` can still be run (retention may have pruned it)."""
        return True

    def prune_artifacts(self, keep: Collection[str]) -> list[str]:
        """Delete kept-back artifacts not in ``keep``; returns the refs deleted."""
        return []

    def adopt(self) -> str | None:
        """Take what serves now without a tower release (deployed by another tool) as one.

        Returns the key its instances go by, or None when there is nothing to adopt.
        """
        return None

    def route_note(self) -> str:
        """How the last ``route`` call really split traffic, in words ("" when as asked)."""
        return ""

    def rollback_to(self, release_id: str) -> None:
        """Send all traffic back to an earlier release."""
        self.route({release_id: 1.0})

    def keep(self, release_id: str) -> None:
        """Cancel a delayed stop: the release is needed again."""
        return None

    def routes(self) -> dict[str, float]:
        """The split the platform applies now, when it can tell."""
        return {}

    def metrics(self, release_id: str, window: float) -> TargetMetrics | None:
        """What the router measured for a release over the last ``window`` seconds."""
        return None

    def public_url(self) -> str | None:
        """Where the service answers through the router, for smoke checks."""
        return None

    def close(self) -> None:
        """Release connections."""
        return None
