"""Durations, sizes and percentages: parsed in this one place.

- durations: ``250ms``, ``30s``, ``5m``, ``1h30m``, ``7d``, ``2w``; a bare number is seconds.
- sizes: ``512mb``, ``2gb``, ``1.5GiB``, ``64k``; binary multiples (1 kb = 1024 bytes,
  as Fly and Docker count memory); a bare number is bytes.
- percentages: ``5%``, ``0.1%``; a bare number is percentage points (``5`` is 5%).
  Parsed to a fraction: ``5%`` -> 0.05.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
"""Seconds per duration unit."""

SIZE_UNITS: dict[str, int] = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
"""Bytes per size unit (binary multiples)."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_BY_LETTER = {"": 1, **{unit[0]: factor for unit, factor in SIZE_UNITS.items()}}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _got(value: object) -> str:
    """``value`` as tower.toml writes it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def parse_duration(value: object) -> float:
    """Return seconds for ``value`` (``"30s"``, ``"1h30m"``, ``250``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like 30s, 5m or 1h (got {_got(value)})")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"must be a non-negative duration (got {_got(value)})")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a duration like 30s, 5m or 1h (got {_got(value)})")
    text = value.strip().lower()
    pos, total, parts = 0, 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * DURATION_UNITS[match.group(2)]
        pos = match.end()
        parts += 1
    if parts == 0 or pos != len(text):
        raise ValueError(f"must be a duration like 30s, 5m or 1h (got {_got(value)})")
    return total


def parse_size(value: object) -> int:
    """Return bytes for ``value`` (``"512mb"``, ``"2gb"``, ``1024``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a size like 512mb or 2gb (got {_got(value)})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must be a non-negative size (got {_got(value)})")
        return value
    if isinstance(value, float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"must be a non-negative size (got {_got(value)})")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a size like 512mb or 2gb (got {_got(value)})")
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"must be a size like 512mb or 2gb (got {_got(value)})")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _SIZE_BY_LETTER[unit])


def parse_percent(value: object) -> float:
    """Return a fraction for ``value`` (``"5%"`` -> 0.05; a bare ``5`` is 5%)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a percentage like 5% or 0.1% (got {_got(value)})")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (match := _PERCENT.match(value)):
        number = float(match.group(1))
    else:
        raise ValueError(f"must be a percentage like 5% or 0.1% (got {_got(value)})")
    if not 0 <= number <= 100 or not math.isfinite(number):
        raise ValueError(f"must be a percentage between 0% and 100% (got {_got(value)})")
    return number / 100.0


def scale(number: float, unit: str) -> float | None:
    """``number`` written with ``unit`` in base units (seconds, bytes, a fraction); None if
    ``unit`` is not a duration, size or ``%``. Conditions read their literals with this."""
    unit = unit.lower()
    if unit in DURATION_UNITS:
        return number * DURATION_UNITS[unit]
    if unit in SIZE_UNITS:
        return number * SIZE_UNITS[unit]
    if unit == "%":
        return number / 100.0
    return None


def format_in(value: float, unit: str) -> str:
    """Render ``value`` (base units) the way ``unit``'s kind is written: ``150ms``, ``2mb``, ``5%``."""
    unit = unit.lower()
    if unit in DURATION_UNITS:
        return format_duration(value)
    if unit in SIZE_UNITS:
        return format_size(int(value))
    if unit == "%":
        return format_percent(value)
    return f"{value:g}"


def format_duration(seconds: float) -> str:
    """Render seconds the way a person writes them: ``250ms``, ``30s``, ``5m``, ``1h30m``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds * 1000 >= 1 else f"{seconds * 1000:.2f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    out, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def format_size(size: int) -> str:
    for unit, factor in (("gb", 1024**3), ("mb", 1024**2), ("kb", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size}b"


def format_percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _pydantic(parser: Any, kind: str) -> Any:
    def validate(value: object) -> Any:
        try:
            return parser(value)
        except ValueError as exc:
            raise PydanticCustomError(kind, str(exc)) from None

    return validate


Duration = Annotated[
    float,
    BeforeValidator(_pydantic(parse_duration, "duration")),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
            "description": 'a duration: "200ms", "30s", "5m", "1h30m", "7d", or seconds',
        }
    ),
]
"""Seconds, written in tower.toml as ``30s``, ``5m``, ``1h``."""

Size = Annotated[
    int,
    BeforeValidator(_pydantic(parse_size, "size")),
    PlainSerializer(format_size, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
            "description": 'a size: "512mb", "1gb", "64kib", or bytes',
        }
    ),
]
"""Bytes, written in tower.toml as ``512mb``, ``2gb``."""

Percent = Annotated[
    float,
    BeforeValidator(_pydantic(parse_percent, "percent")),
    PlainSerializer(format_percent, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "pattern": "^\\s*-?[0-9.]+\\s*%\\s*$"},
            ],
            "description": 'a percentage: "20%", or a number',
        }
    ),
]
"""A fraction, written in tower.toml as ``5%`` or ``0.1%``."""
