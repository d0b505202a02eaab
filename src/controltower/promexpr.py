"""Expressions over scraped Prometheus metrics, for ``[monitors.metrics]``.

An expression is arithmetic (``+ - * /``, parentheses, numbers) over selectors::

    process_resident_memory_bytes / 536870912 * 100
    sum(http_requests_total{status=~"5.."}) / sum(http_requests_total)
    increase(http_requests_total{status=~"5.."}) / increase(http_requests_total)

A selector is a metric name with optional label matchers (``=``, ``!=``, ``=~``,
``!~``); on its own it is the sum of the matching samples. Functions: ``sum``,
``max``, ``min``, ``avg``, ``count`` over a selector's samples, and ``rate`` and
``increase`` of a counter since the previous scrape (0 on the first one).
``x / 0`` is 0 when ``x`` is 0 (no traffic, no errors), else infinity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from controltower.exceptions import MonitorError

Sample = tuple[str, dict[str, str], float]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<op>=~|!~|!=|[-+*/(){},=])
    | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    )""",
    re.VERBOSE,
)
_AGGREGATES: dict[str, Callable[[list[float]], float | None]] = {
    "sum": lambda values: sum(values),
    "max": lambda values: max(values) if values else None,
    "min": lambda values: min(values) if values else None,
    "avg": lambda values: sum(values) / len(values) if values else None,
    "count": lambda values: float(len(values)),
}
_COUNTER_FUNCTIONS = ("rate", "increase")


def parse_samples(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition, as (name, labels, value)."""
    try:
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except (ValueError, TypeError, IndexError) as exc:
        raise MonitorError(f"the metrics are not in the Prometheus text format: {exc}") from None


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...] = ()

    def values(self, samples: Iterable[Sample]) -> list[float]:
        found = []
        for name, labels, value in samples:
            if name != self.name or math.isnan(value):
                continue
            if all(_match(labels.get(key, ""), op, want) for key, op, want in self.matchers):
                found.append(value)
        return found

    def __str__(self) -> str:
        if not self.matchers:
            return self.name
        inner = ",".join(f'{key}{op}"{want}"' for key, op, want in self.matchers)
        return f"{self.name}{{{inner}}}"


def _match(value: str, op: str, want: str) -> bool:
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    found = re.fullmatch(want, value) is not None
    return found if op == "=~" else not found


@dataclass
class CounterMemory:
    """The previous value of every counter that ``rate``/``increase`` looked at."""

    seen: dict[str, tuple[float, float]] = field(default_factory=dict)


Node = tuple[str, object, object]


class Expression:
    """A parsed expression; ``evaluate(samples, now, memory)`` gives a number or None."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = self._tokenize(text)
        self._pos = 0
        self.tree = self._expr()
        if self._pos != len(self._tokens):
            self._fail(f"unexpected {self._tokens[self._pos][1]!r}")

    def _fail(self, why: str) -> None:
        raise MonitorError(
            f"metric expression {self.text!r}: {why}",
            hint='write e.g. sum(http_requests_total{status=~"5.."}) / sum(http_requests_total)',
        )

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                if text[pos:].strip() == "":
                    break
                self._fail(f"cannot read {text[pos:]!r}")
                raise AssertionError
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            pos = match.end()
        return tokens

    def _peek(self) -> str:
        return self._tokens[self._pos][1] if self._pos < len(self._tokens) else ""

    def _take(self) -> tuple[str, str]:
        if self._pos >= len(self._tokens):
            self._fail("ends too early")
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _expect(self, value: str) -> None:
        if self._take()[1] != value:
            self._fail(f"expected {value!r}")

    def _expr(self) -> Node:
        node = self._term()
        while self._peek() in ("+", "-"):
            node = (self._take()[1], node, self._term())
        return node

    def _term(self) -> Node:
        node = self._factor()
        while self._peek() in ("*", "/"):
            node = (self._take()[1], node, self._factor())
        return node

    def _factor(self) -> Node:
        kind, value = self._take()
        if kind == "number":
            return ("num", float(value), None)
        if value == "(":
            node = self._expr()
            self._expect(")")
            return node
        if value == "-":
            return ("-", ("num", 0.0, None), self._factor())
        if kind != "name":
            self._fail(f"unexpected {value!r}")
        if self._peek() == "(" and (value in _AGGREGATES or value in _COUNTER_FUNCTIONS):
            self._take()
            selector = self._selector(self._take()[1])
            self._expect(")")
            return ("fn", value, selector)
        return ("fn", "sum", self._selector(value))

    def _selector(self, name: str) -> Selector:
        if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", name):
            self._fail(f"{name!r} is not a metric name")
        matchers: list[tuple[str, str, str]] = []
        if self._peek() == "{":
            self._take()
            while self._peek() != "}":
                label = self._take()[1]
                op = self._take()[1]
                if op not in ("=", "!=", "=~", "!~"):
                    self._fail(f"unknown label matcher {op!r}")
                kind, raw = self._take()
                if kind != "string":
                    self._fail(f"label {label} needs a quoted value")
                matchers.append((label, op, raw[1:-1].replace('\\"', '"')))
                if self._peek() == ",":
                    self._take()
            self._expect("}")
        return Selector(name, tuple(matchers))

    def evaluate(
        self, samples: list[Sample], *, now: float, memory: CounterMemory | None = None
    ) -> float | None:
        return _evaluate(self.tree, samples, now, memory or CounterMemory())


def _evaluate(node: Node, samples: list[Sample], now: float, memory: CounterMemory) -> float | None:
    kind, left, right = node
    if kind == "num":
        assert isinstance(left, float)
        return left
    if kind == "fn":
        assert isinstance(left, str) and isinstance(right, Selector)
        values = right.values(samples)
        if left in _AGGREGATES:
            if not values and left != "count":
                return None
            return _AGGREGATES[left](values)
        if not values:
            return None
        current, key = sum(values), f"{left}:{right}"
        previous = memory.seen.get(key)
        memory.seen[key] = (current, now)
        if previous is None:
            return 0.0
        delta = current - previous[0]
        if delta < 0:
            delta = current
        if left == "increase":
            return delta
        elapsed = now - previous[1]
        return delta / elapsed if elapsed > 0 else 0.0
    assert isinstance(left, tuple) and isinstance(right, tuple)
    a = _evaluate(left, samples, now, memory)
    b = _evaluate(right, samples, now, memory)
    if a is None or b is None:
        return None
    if kind == "+":
        return a + b
    if kind == "-":
        return a - b
    if kind == "*":
        return a * b
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return a / b
