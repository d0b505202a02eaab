"""Types for the core concepts, gathered in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypeAlias

JSON: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None
KeyPath: TypeAlias = tuple[str | int, ...]
Environ: TypeAlias = Mapping[str, str]


class Clock(Protocol):
    """Injectable time. ``SystemClock`` is real; ``controltower.testing.FakeClock`` is not."""

    def now(self) -> datetime: ...

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...
