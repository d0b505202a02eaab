"""The extension point: a check is a small class registered under a stable id.

A static check reads the repository; a live check talks to the running service
through ``ctx.client``. Other areas add checks with ``@register``::

    @register
    class LoadBudget(Check):
        id = "performance.budgets"
        title = "Performance budgets hold under a short load"
        category = Category.PERFORMANCE
        gate = Gate.DEPLOY
        kind = "live"

        async def run(self, ctx: CheckContext) -> Outcome:
            ...
"""

from __future__ import annotations

import asyncio
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import httpx

from controltower.checks.model import Category, Gate, Outcome, Severity
from controltower.clock import system_clock
from controltower.spec import Spec
from controltower.spec.service import Target
from controltower.typing import Clock

ALL_TARGETS: frozenset[Target] = frozenset(Target)


@dataclass
class CheckContext:
    """What every check receives.

    ``root`` is the service's directory (tower.toml's folder joined with
    ``service.root``); ``url`` is the base URL for live checks (None: static only);
    ``client`` is shared by live checks and follows no redirects by default;
    ``ssl_context`` verifies certificates in raw TLS checks (default: the system's CAs).
    """

    spec: Spec
    root: Path
    url: str | None = None
    client: httpx.AsyncClient | None = None
    environment: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    clock: Clock = system_clock
    ssl_context: ssl.SSLContext | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def target(self) -> Target:
        return self.spec.service.target

    @property
    def is_production(self) -> bool:
        return self.spec.is_production

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    async def once(self, key: str, make: Callable[[], Any]) -> Any:
        """Compute ``await make()`` once per run and share it between checks."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self.cache:
                self.cache[key] = await make()
            return self.cache[key]

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``url + path`` once per run (cached by path and options)."""
        if self.client is None or self.url is None:
            raise RuntimeError("live check run without a URL")
        client, url = self.client, self.url.rstrip("/") + path
        key = f"GET {path} {sorted(kwargs.items())!r}"

        async def fetch() -> httpx.Response:
            return await client.get(url, **kwargs)

        response: httpx.Response = await self.once(key, fetch)
        return response


class Check(ABC):
    """One readiness check. Subclasses set the class attributes and ``run``.

    ``targets``: where the check applies at all (elsewhere it is skipped).
    ``advice_on``: targets where a failure is advice, with ``advice_reason``.
    ``hadolint``: the hadolint rule code when the check overlaps one.
    ``exclusive``: run alone after the others (it measures time).
    ``remedy``: what fixing a failure takes, in one sentence (shown in docs and --list).
    The class docstring says what the check looks for.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    category: ClassVar[Category]
    gate: ClassVar[Gate] = Gate.PRODUCTION
    severity: ClassVar[Severity] = Severity.MEDIUM
    kind: ClassVar[Literal["static", "live"]] = "static"
    targets: ClassVar[frozenset[Target]] = ALL_TARGETS
    advice_on: ClassVar[frozenset[Target]] = frozenset()
    advice_reason: ClassVar[str] = ""
    hadolint: ClassVar[str] = ""
    production_only: ClassVar[bool] = False
    exclusive: ClassVar[bool] = False
    remedy: ClassVar[str] = ""

    @abstractmethod
    async def run(self, ctx: CheckContext) -> Outcome:
        """Inspect and return an Outcome; raise nothing on purpose (errors become status error)."""


CheckT = TypeVar("CheckT", bound=type[Check])
_REGISTRY: dict[str, type[Check]] = {}


def register(cls: CheckT) -> CheckT:
    """Class decorator: add a check to the registry under its id (ids are unique)."""
    existing = _REGISTRY.get(cls.id)
    if existing is not None and existing is not cls:
        raise ValueError(f"check id {cls.id!r} is already registered by {existing.__qualname__}")
    _REGISTRY[cls.id] = cls
    return cls


def unregister(check_id: str) -> None:
    _REGISTRY.pop(check_id, None)


def registered() -> dict[str, type[Check]]:
    """Every registered check by id, loading the built-in checks first."""
    from controltower.checks import builtin  # noqa: F401  (registers on import)

    return dict(sorted(_REGISTRY.items()))


def select(
    ids: Iterable[str] | None = None, *, kinds: Iterable[str] = ("static", "live")
) -> list[Check]:
    """Instances of the registered checks; ``ids`` filters by id or id prefix (``fly.``)."""
    wanted = list(ids or [])
    chosen = []
    for check_id, cls in registered().items():
        if cls.kind not in kinds:
            continue
        if wanted and not any(
            check_id == w or check_id.startswith(w.rstrip(".") + ".") for w in wanted
        ):
            continue
        chosen.append(cls())
    return chosen
