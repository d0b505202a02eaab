"""The caps on what one ingestion request may make the server do, and JSON read under them.

Every cap is a ``[server]`` setting, checked before the work it bounds, and a
request over one is answered 413 (size) or 400 (shape) with a message naming
the setting:

=========================== ========= ======================================================
setting                     default   bounds
=========================== ========= ======================================================
``max_body_size``           1 MiB     the body as received (compressed); 413
``max_event_size``          1 MiB     the decoded body, and each envelope item; 413
``max_decompression_ratio`` 200       decoded size over encoded size (past 64 KiB); 413
``max_envelope_items``      100       items in one envelope; 413
``max_json_depth``          64        nesting of objects and arrays; 400
``max_string_size``         256 KiB   characters in one JSON string or key; 413
(fixed)                     4 MiB     a brotli body's declared window (see ``decode``); 400
=========================== ========= ======================================================

JSON is read as SDKs send it and made storable on the way in: invalid UTF-8 and
lone surrogates become U+FFFD, NUL characters (which PostgreSQL text cannot hold)
are removed, and numbers that are not finite (``NaN``, ``Infinity``, ``1e400``)
become null. Whatever is answered 200 can therefore be stored and read back.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controltower.ingest.errors import Rejected, TooLarge

if TYPE_CHECKING:
    from controltower.spec.server import ServerSpec

MIB = 1024 * 1024


@dataclass(frozen=True)
class IngestLimits:
    max_body_size: int = MIB
    max_event_size: int = MIB
    max_decompression_ratio: int = 200
    max_envelope_items: int = 100
    max_json_depth: int = 64
    max_string_size: int = 256 * 1024

    @classmethod
    def from_spec(cls, server: ServerSpec | None) -> IngestLimits:
        if server is None:
            return cls()
        return cls(
            max_body_size=server.max_body_size,
            max_event_size=server.max_event_size,
            max_decompression_ratio=server.max_decompression_ratio,
            max_envelope_items=server.max_envelope_items,
            max_json_depth=server.max_json_depth,
            max_string_size=server.max_string_size,
        )


def _no_constant(name: str) -> None:
    return None


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _fix(text: str) -> str:
    return _UNSTORABLE.sub(lambda m: "" if m.group(0) == "\x00" else "\ufffd", text)


def storable_text(text: str) -> str:
    """``text`` with NUL removed and lone surrogates replaced, so any store takes it."""
    return _fix(text) if _UNSTORABLE.search(text) else text


def decode_json(data: bytes | str) -> Any:
    """JSON as SDKs send it: a BOM is skipped, invalid UTF-8 replaced, and the
    constants NaN and Infinity (which no store column takes) read as null.
    Raises ValueError (also for nesting too deep for the parser)."""
    if isinstance(data, bytes):
        if b"\x00" in data[:4]:  # UTF-16 or UTF-32, which JSON allows: let json detect it
            try:
                return json.loads(data, parse_constant=_no_constant)
            except (UnicodeDecodeError, RecursionError) as exc:
                raise ValueError(str(exc)) from None
        data = data.decode("utf-8", "replace")
    try:
        return _DECODER.decode(data.removeprefix("\ufeff"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


class _Walk:
    __slots__ = ("depth", "fix_text", "strings")

    def __init__(self, limits: IngestLimits, fix_text: bool) -> None:
        self.depth = limits.max_json_depth
        self.strings = limits.max_string_size
        self.fix_text = fix_text

    def text(self, value: str, where: str) -> str:
        if len(value) > self.strings:
            raise TooLarge(
                f"a string at {where or 'the top'} has {len(value)} characters; the cap is "
                f"{self.strings} ([server] max_string_size)",
                cap="max_string_size",
            )
        if self.fix_text and _UNSTORABLE.search(value):
            return _fix(value)
        return value

    def value(self, value: Any, depth: int, where: str) -> Any:
        kind = type(value)
        if kind is str:
            return self.text(value, where)
        if kind is float:
            return value if math.isfinite(value) else None
        if kind is dict:
            return self.object(value, depth + 1, where)
        if kind is list:
            return self.array(value, depth + 1, where)
        return value

    def _deep(self, depth: int, where: str) -> None:
        if depth > self.depth:
            raise Rejected(
                f"the JSON at {where or 'the top'} is nested deeper than {self.depth} levels "
                "([server] max_json_depth)",
                cap="max_json_depth",
            )

    def object(self, value: dict[str, Any], depth: int, where: str) -> dict[str, Any]:
        self._deep(depth, where)
        renamed = False
        for key, item in value.items():
            if self.text(key, where) is not key:
                renamed = True
            kind = type(item)
            if kind is str or kind is dict or kind is list or kind is float:
                fixed = self.value(item, depth, f"{where}.{key[:40]}" if where else key[:40])
                if fixed is not item:
                    value[key] = fixed
        if renamed:
            return {self.text(key, where): item for key, item in value.items()}
        return value

    def array(self, value: list[Any], depth: int, where: str) -> list[Any]:
        self._deep(depth, where)
        for index, item in enumerate(value):
            kind = type(item)
            if kind is str or kind is dict or kind is list or kind is float:
                fixed = self.value(item, depth, f"{where}[{index}]")
                if fixed is not item:
                    value[index] = fixed
        return value


def normalize(value: Any, limits: IngestLimits, *, fix_text: bool = True) -> Any:
    """``value`` (parsed JSON, changed in place) within ``limits`` and storable:
    ``Rejected``/``TooLarge`` naming the cap it is over. ``fix_text=False`` skips the
    search for NUL and lone surrogates (when the source had no ``\\u`` escape)."""
    return _Walk(limits, fix_text).value(value, 0, "")


def load_json(data: bytes, limits: IngestLimits, what: str) -> Any:
    """Parse ``data`` (the ``what`` of a request) and normalize it within ``limits``."""
    try:
        value = decode_json(data)
    except ValueError:
        raise Rejected(f"the {what} is not valid JSON") from None
    return normalize(value, limits, fix_text=b"\\u" in data or b"\x00" in data[:4])


def load_object(data: bytes, limits: IngestLimits, what: str) -> dict[str, Any]:
    value = load_json(data, limits, what)
    if not isinstance(value, dict):
        raise Rejected(f"the {what} is not a JSON object")
    return value
