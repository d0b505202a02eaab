"""What a health check is: a small class (or one function) that looks at one dependency."""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from controltower.exceptions import CheckError

Status: TypeAlias = Literal["pass", "warn", "fail"]
DEFAULT_TIMEOUT = 1.0


class CheckFailed(CheckError):
    """Raised by a check to fail with a clean, secret-free ``output``."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What a check saw. Return one from ``Check.run`` to report a value other than latency."""

    value: float | int | str | None = None
    unit: str | None = None
    status: Status = "pass"
    output: str = ""


class Check(ABC):
    """One dependency to look at. Subclasses implement ``run``; raising means ``fail``.

    ``name`` is the IETF component name, ``measurement`` the measurement name
    (the response key is ``name:measurement``). A ``critical`` check failing
    makes readiness answer 503; a non-critical one makes it ``warn``.
    """

    measurement: str = "responseTime"
    component_type: str = "component"
    default_name: str = "check"

    def __init__(
        self,
        name: str | None = None,
        *,
        critical: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        success_ttl: float | None = None,
        failure_ttl: float | None = None,
    ) -> None:
        if timeout <= 0:
            raise CheckError(
                f"check {name or self.default_name!r}: timeout must be > 0, got {timeout}"
            )
        self.name = name or self.default_name
        self.critical = critical
        self.timeout = float(timeout)
        self.success_ttl = success_ttl
        self.failure_ttl = failure_ttl

    @property
    def key(self) -> str:
        return f"{self.name}:{self.measurement}"

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in this check's output (passwords, keys)."""
        return ()

    def describe_failure(self, reason: str) -> str:
        return f"{self.name} unreachable: {reason}"

    @abstractmethod
    async def run(self) -> Observation | None:
        """Look at the dependency; return an observation, or None to report latency."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, critical={self.critical})"


CheckFunction: TypeAlias = Callable[[], Any]


class FunctionCheck(Check):
    """A check made from one function, sync or async.

    It passes when the function returns None or True, fails when it returns
    False or raises, and reports an ``Observation`` when it returns one.
    Sync functions run in a worker thread so they never block the event loop.
    """

    def __init__(
        self,
        function: CheckFunction,
        name: str | None = None,
        *,
        component_type: str = "component",
        measurement: str = "responseTime",
        **options: Any,
    ) -> None:
        super().__init__(name or function.__name__, **options)
        self.function = function
        self.component_type = component_type
        self.measurement = measurement
        self._is_async = inspect.iscoroutinefunction(function)

    async def run(self) -> Observation | None:
        if self._is_async:
            outcome = await self.function()
        else:
            outcome = await asyncio.to_thread(self.function)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        if outcome is False:
            raise CheckFailed(f"{self.name} reported failure")
        return outcome if isinstance(outcome, Observation) else None


def check(
    name: str | None = None, **options: Any
) -> Callable[[CheckFunction | Callable[[], Awaitable[Any]]], FunctionCheck]:
    """Turn a function into a check::

    @check("queue", critical=False, timeout=0.5)
    async def queue() -> Observation:
        return Observation(await depth(), "jobs")
    """

    def decorate(function: CheckFunction) -> FunctionCheck:
        return FunctionCheck(function, name, **options)

    return decorate
