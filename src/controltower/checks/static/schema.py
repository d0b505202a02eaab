"""A small language for checking parsed TOML: tables, arrays, scalars, durations, sizes.

Each node checks a value and appends ``(key path, problem)`` pairs; the key path
lets the caller find the line. Durations follow Go's syntax (as flyctl reads
them) and sizes docker/go-units' (``512mb``, ``8g``, ``1GiB``).
"""

from __future__ import annotations

import difflib
import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controltower.typing import KeyPath

Problem = tuple[KeyPath, str]

_GO_DURATION = re.compile(r"^[-+]?(0|(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
_GO_UNIT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}  # fmt: skip
_HUMAN_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``"1m30s"``, ``"500ms"``), or None when it is not one."""
    text = text.strip()
    if not _GO_DURATION.match(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in _GO_UNIT.findall(text))


def human_size(text: str, binary: bool) -> int | None:
    """Bytes in a docker/go-units size (``"512mb"``, ``"8g"``, ``"1GiB"``), or None."""
    match = _HUMAN_SIZE.match(text.strip())
    if not match:
        return None
    base = 1024 if binary else 1000
    power = " kmgtp".index((match.group(3) or " ").lower())
    return int(float(match.group(1)) * base**power)


def size_in(value: Any, unit: str, binary: bool) -> int | None:
    """flyctl's ``ParseSize``: a bare integer is in ``unit`` (MB or GB), else a human size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    found = human_size(value, binary)
    if found is None:
        return None
    quotient = {"MB": 1024**2, "GB": 1000**3}[unit]
    return found // quotient


def seconds(value: Any, int_unit: float = 1.0) -> float | None:
    """Seconds in a fly.toml duration; a bare number counts in ``int_unit`` seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) * int_unit
    if isinstance(value, str):
        return go_duration(value)
    return None


# -- the schema language ------------------------------------------------------------


class Node(ABC):
    @abstractmethod
    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        """Append a problem for each way ``value`` breaks this rule."""

    def describe(self) -> str:
        return type(self).__name__.lower()


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Str(Node):
    pattern: str = ""
    hint: str = ""
    shell: bool = False

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        if not isinstance(value, str):
            out.append((path, f"{show(value)} is not a string"))
            return
        if self.pattern and not re.fullmatch(self.pattern, value):
            out.append((path, f"{show(value)} {self.hint or f'does not match {self.pattern}'}"))
        if self.shell:
            try:
                shlex.split(value)
            except ValueError as exc:
                out.append((path, f"{show(value)} does not split into words: {exc}"))


@dataclass
class Int(Node):
    minimum: int | None = None
    maximum: int | None = None
    allowed: tuple[int, ...] = ()

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            out.append((path, f"{show(value)} is not an integer"))
            return
        if self.allowed and value not in self.allowed:
            out.append((path, f"{value} is not one of {', '.join(map(str, self.allowed))}"))
        elif self.minimum is not None and value < self.minimum:
            out.append((path, f"{value} is below the minimum {self.minimum}"))
        elif self.maximum is not None and value > self.maximum:
            out.append((path, f"{value} is above the maximum {self.maximum}"))


@dataclass
class Number(Node):
    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append((path, f"{show(value)} is not a number"))


class Bool(Node):
    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        if not isinstance(value, bool):
            out.append((path, f"{show(value)} is not true or false"))


class Anything(Node):
    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        return


@dataclass
class Enum(Node):
    values: tuple[str, ...]
    case_insensitive: bool = False

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        probe = value.lower() if self.case_insensitive and isinstance(value, str) else value
        allowed = tuple(v.lower() for v in self.values) if self.case_insensitive else self.values
        if not isinstance(value, str) or probe not in allowed:
            out.append((path, f"{show(value)} is not one of {', '.join(self.values)}"))


@dataclass
class Duration(Node):
    """A Go duration string, or a number in ``int_unit`` seconds (flyctl's patches)."""

    int_unit: float = 1.0
    minimum: float | None = None
    maximum: float | None = None
    note: str = ""

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        found = seconds(value, self.int_unit)
        if found is None:
            out.append((path, f"{show(value)} is not a duration like '30s' or '1m30s'"))
            return
        if self.minimum is not None and found < self.minimum:
            out.append((path, f"{show(value)} is below {self.minimum:g}s{self.note}"))
        elif self.maximum is not None and found > self.maximum:
            out.append((path, f"{show(value)} is above {self.maximum:g}s{self.note}"))


@dataclass
class Size(Node):
    """A size: an integer in ``unit`` or a human size (``"512mb"``, ``"30gb"``)."""

    unit: str = "MB"
    binary: bool = True
    minimum: int | None = None
    maximum: int | None = None

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        found = size_in(value, self.unit, self.binary)
        if found is None:
            out.append((path, f"{show(value)} is not a size like '512mb' or '1gb'"))
            return
        if self.minimum is not None and found < self.minimum:
            out.append((path, f"{show(value)} is below {self.minimum} {self.unit}"))
        elif self.maximum is not None and found > self.maximum:
            out.append((path, f"{show(value)} is above {self.maximum} {self.unit}"))


@dataclass
class List(Node):
    item: Node
    min_items: int = 0

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        if not isinstance(value, list):
            out.append((path, f"{show(value)} is not an array"))
            return
        if len(value) < self.min_items:
            out.append(
                (path, f"needs at least {self.min_items} item{'s' if self.min_items > 1 else ''}")
            )
        for index, item in enumerate(value):
            self.item.check((*path, index), item, out)


@dataclass
class Either(Node):
    options: tuple[Node, ...]
    described: str

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        for option in self.options:
            trial: list[Problem] = []
            option.check(path, value, trial)
            if not trial:
                return
        out.append((path, f"{show(value)} is not {self.described}"))


@dataclass
class Map(Node):
    """A table with free keys, each value checked by ``value``."""

    value: Node
    key: Callable[[str], str | None] | None = None

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append((path, f"{show(value)} is not a table"))
            return
        for name, item in value.items():
            if self.key is not None and (reason := self.key(name)):
                out.append(((*path, name), reason))
            self.value.check((*path, name), item, out)


Rule = Callable[[dict[str, Any], KeyPath, list[Problem]], None]


@dataclass
class Table(Node):
    fields: dict[str, Node]
    required: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    where: str = "fly.toml"

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append((path, f"{show(value)} is not a table"))
            return
        for name, item in value.items():
            if name not in self.fields:
                near = _near(name, self.fields)
                out.append(((*path, name), f"not a {self.where} key{near}"))
                continue
            self.fields[name].check((*path, name), item, out)
        for name in self.required:
            if name not in value:
                out.append(((*path, name), "missing (required)"))
        for rule in self.rules:
            rule(value, path, out)


@dataclass
class Tables(Node):
    """An array of tables; a single table is accepted as a one-item array (as flyctl does)."""

    table: Node

    def check(self, path: KeyPath, value: Any, out: list[Problem]) -> None:
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list):
            out.append((path, f"{show(value)} is not an array of tables"))
            return
        for index, item in enumerate(items):
            self.table.check((*path, index), item, out)


def _near(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""
