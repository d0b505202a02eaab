"""The shared conditions language, for monitors, deploy analysis, smoke checks and budgets.

A condition compares a value from a context with a literal::

    status == 200
    latency < 200ms
    body.status == "pass"
    body.checks["db:ping"][0].status != "fail"
    header.content-type =~ "json"
    cert_days > 14
    error_rate < 0.1%
    len(body.items) >= 1
    has(body.version)
    status in [200, 204]

Operators: ``== != < <= > >= =~ (regex search) !~ contains in``.
Literals: numbers with an optional unit (``ms s m h d w`` are durations in
seconds, ``%`` is a fraction, ``b kb mb gb`` are bytes), quoted strings,
``true``, ``false``, ``null`` and ``[...]`` lists for ``in``.
Functions: ``len(path)``, ``has(path)`` (a whole condition on its own).

``parse_condition`` checks the text once; ``Condition.evaluate`` runs it on a
context (a mapping, possibly nested) and returns a ``ConditionResult`` that
says what was observed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from controltower.units import format_in, scale

__all__ = [
    "Condition",
    "ConditionResult",
    "ConditionSyntaxError",
    "ConditionText",
    "all_pass",
    "evaluate_all",
    "parse_condition",
]

_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "=~", "!~", "contains", "in")
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?P<unit>ms|s|m|h|d|w|%|kb|mb|gb|tb|b)?(?![A-Za-z0-9_])
  | (?P<op>==|!=|<=|>=|=~|!~|<|>)
  | (?P<punct>[\[\]().,])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-:]*)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_MISSING = object()


class ConditionSyntaxError(ValueError):
    """The text is not a condition; the message says where and why."""


@dataclass(frozen=True)
class Literal:
    value: Any
    unit: str = ""

    def render(self) -> str:
        return _render(self.value, self.unit)


@dataclass(frozen=True)
class Path:
    parts: tuple[str | int, ...]
    function: str = ""

    def render(self) -> str:
        text = ""
        for index, part in enumerate(self.parts):
            if isinstance(part, int):
                text += f"[{part}]"
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", part):
                text += part if index == 0 else f".{part}"
            else:
                text += f'["{part}"]'
        return f"{self.function}({text})" if self.function else text

    def resolve(self, context: Mapping[str, Any]) -> Any:
        value: Any = context
        for part in self.parts:
            value = _step(value, part)
            if value is _MISSING:
                break
        if self.function == "len":
            return _MISSING if value is _MISSING or value is None else len(value)
        if self.function == "has":
            return value is not _MISSING and value is not None
        return value


def _step(value: Any, part: str | int) -> Any:
    if isinstance(part, int):
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return value[part] if -len(value) <= part < len(value) else _MISSING
        return _MISSING
    if isinstance(value, Mapping):
        if part in value:
            return value[part]
        lowered = part.lower()
        for key in value:
            if isinstance(key, str) and key.lower() == lowered:
                return value[key]
    return _MISSING


@dataclass(frozen=True)
class ConditionResult:
    """The outcome of one condition: ``ok``, what was observed and a sentence about it."""

    condition: str
    ok: bool
    observed: Any = None
    message: str = ""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Condition:
    """A parsed condition. ``str(condition)`` gives back its text."""

    text: str
    left: Path
    operator: str = ""
    right: Literal | None = None
    paths: tuple[Path, ...] = field(default=())

    def __str__(self) -> str:
        return self.text

    @property
    def subject(self) -> str:
        """The path the condition looks at, e.g. ``body.status``."""
        return self.left.render()

    def evaluate(self, context: Mapping[str, Any]) -> ConditionResult:
        observed = self.left.resolve(context)
        if self.left.function == "has" and not self.operator:
            ok = bool(observed)
            message = f"{self.text}: {'present' if ok else 'missing'}"
            return ConditionResult(self.text, ok, observed, message)
        if observed is _MISSING:
            return ConditionResult(
                self.text, False, None, f"{self.text}: {self.subject} is missing"
            )
        assert self.right is not None
        try:
            ok = _compare(observed, self.operator, self.right.value)
        except (TypeError, ValueError, re.error):
            ok = False
        shown = _render(observed, self.right.unit)
        verdict = "ok" if ok else "failed"
        message = f"{self.text}: observed {shown} ({verdict})"
        return ConditionResult(self.text, ok, observed, message)


def _coerce_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare(observed: Any, operator: str, expected: Any) -> bool:
    if operator in ("=~", "!~"):
        found = re.search(str(expected), "" if observed is None else str(observed)) is not None
        return found if operator == "=~" else not found
    if operator == "contains":
        if isinstance(observed, str):
            return str(expected) in observed
        if isinstance(observed, Iterable):
            return expected in list(observed)
        return False
    if operator == "in":
        return any(_equal(observed, item) for item in expected)
    if operator == "==":
        return _equal(observed, expected)
    if operator == "!=":
        return not _equal(observed, expected)
    left, right = _coerce_number(observed), _coerce_number(expected)
    if left is None or right is None:
        if isinstance(observed, str) and isinstance(expected, str):
            left_s, right_s = observed, expected
            return {
                "<": left_s < right_s,
                "<=": left_s <= right_s,
                ">": left_s > right_s,
                ">=": left_s >= right_s,
            }[operator]
        return False
    if math.isnan(left):
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[
        operator
    ]


def _equal(observed: Any, expected: Any) -> bool:
    if expected is None or observed is None:
        return observed is expected
    if isinstance(expected, bool) or isinstance(observed, bool):
        return observed is expected or str(observed).lower() == str(expected).lower()
    left, right = _coerce_number(observed), _coerce_number(expected)
    if left is not None and right is not None and not isinstance(expected, str):
        return math.isclose(left, right, rel_tol=1e-12, abs_tol=1e-12)
    return str(observed) == str(expected)


def _render(value: Any, unit: str) -> str:
    number = _coerce_number(value)
    if number is not None and unit:
        return format_in(number, unit)
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, str, int]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match:
                advice = " (use == to compare)" if text[pos] == "=" else ""
                raise ConditionSyntaxError(f"unexpected {text[pos]!r} at column {pos + 1}{advice}")
            kind = match.lastgroup or ""
            if kind == "unit":
                kind = "number"
            if kind != "ws":
                unit = (match.group("unit") or "").lower() if match.group("number") else ""
                value = match.group("number") if match.group("number") else match.group(0)
                self.tokens.append((kind, value, unit, pos))
            pos = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str, str, int]:
        token = self.peek()
        if token is None:
            raise ConditionSyntaxError("ends too soon")
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1] != value:
            raise ConditionSyntaxError(f"expected {value!r} at column {token[3] + 1}")

    def path(self) -> Path:
        kind, value, _, pos = self.take()
        if kind != "ident":
            raise ConditionSyntaxError(
                f"expected a name such as status, latency or body.field at column {pos + 1}"
            )
        if value in ("len", "has") and (nxt := self.peek()) and nxt[1] == "(":
            self.take()
            inner = self.path()
            self.expect(")")
            return Path(inner.parts, function=value)
        parts: list[str | int] = [value]
        while (token := self.peek()) and token[1] in (".", "["):
            self.take()
            if token[1] == ".":
                kind, value, _, pos = self.take()
                if kind not in ("ident", "number"):
                    raise ConditionSyntaxError(f"expected a field name at column {pos + 1}")
                parts.append(int(value) if kind == "number" else value)
            else:
                kind, value, _, pos = self.take()
                if kind == "number":
                    parts.append(int(float(value)))
                elif kind == "string":
                    parts.append(_unquote(value))
                else:
                    raise ConditionSyntaxError(
                        f"expected an index or a quoted key at column {pos + 1}"
                    )
                self.expect("]")
        return Path(tuple(parts))

    def literal(self) -> Literal:
        kind, value, unit, pos = self.take()
        if kind == "number":
            number = float(value)
            if unit and (scaled := scale(number, unit)) is not None:
                return Literal(scaled, unit)
            return Literal(int(number) if number.is_integer() and "." not in value else number)
        if kind == "string":
            return Literal(_unquote(value))
        if kind == "ident" and value.lower() in ("true", "false"):
            return Literal(value.lower() == "true")
        if kind == "ident" and value.lower() == "null":
            return Literal(None)
        if kind == "ident":
            return Literal(value)
        if value == "[":
            items: list[Any] = []
            while (token := self.peek()) and token[1] != "]":
                items.append(self.literal().value)
                if (token := self.peek()) and token[1] == ",":
                    self.take()
            self.expect("]")
            return Literal(items)
        raise ConditionSyntaxError(f"expected a value at column {pos + 1}")

    def condition(self) -> Condition:
        left = self.path()
        token = self.peek()
        if token is None:
            if left.function == "has":
                return Condition(self.text, left)
            raise ConditionSyntaxError(
                "needs an operator and a value, e.g. status == 200 or latency < 200ms"
            )
        operator = self.take()[1].lower()
        if operator not in _OPERATORS:
            raise ConditionSyntaxError(
                f"unknown operator {operator!r}; use one of {', '.join(_OPERATORS)}"
            )
        right = self.literal()
        if operator == "in" and not isinstance(right.value, list):
            raise ConditionSyntaxError("'in' needs a list, e.g. status in [200, 204]")
        if operator in ("=~", "!~"):
            try:
                re.compile(str(right.value))
            except re.error as exc:
                raise ConditionSyntaxError(f"invalid regular expression: {exc}") from None
        if (extra := self.peek()) is not None:
            raise ConditionSyntaxError(f"unexpected {extra[1]!r} at column {extra[3] + 1}")
        return Condition(self.text, left, operator, right)


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse_condition(text: str) -> Condition:
    """Parse ``text`` or raise ``ConditionSyntaxError`` saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionSyntaxError("is empty; write e.g. status == 200")
    return _Parser(text.strip()).condition()


def evaluate_all(
    conditions: Iterable[Condition], context: Mapping[str, Any]
) -> list[ConditionResult]:
    return [condition.evaluate(context) for condition in conditions]


def all_pass(results: Iterable[ConditionResult]) -> bool:
    return all(result.ok for result in results)


def _validate(value: object) -> Condition:
    if isinstance(value, Condition):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("condition", "must be a condition string such as status == 200")
    try:
        return parse_condition(value)
    except ConditionSyntaxError as exc:
        raise PydanticCustomError(
            "condition", 'invalid condition "{text}": {reason}', {"text": value, "reason": str(exc)}
        ) from None


ConditionText = Annotated[
    Condition,
    BeforeValidator(_validate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": 'a condition: "status == 200", "p95 < 200ms", "error_rate < 1%"',
        }
    ),
]
"""A condition written as text in tower.toml, parsed when the spec loads."""
