"""Sentry envelopes: a header line, then items of an item header line and a payload.

An item header gives the payload ``length`` in bytes, or omits it and the payload
runs to the next newline. See develop.sentry.dev/sdk/data-model/envelopes/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from controltower.ingest.errors import Rejected


def _no_constant(name: str) -> None:
    return None


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def loads(data: bytes | str) -> Any:
    """JSON as sent by SDKs; NaN and Infinity (which no store column takes) read as null."""
    if isinstance(data, bytes):
        if b"\x00" in data[:4]:  # UTF-16 or UTF-32, which JSON allows: let json detect it
            return json.loads(data, parse_constant=_no_constant)
        return _DECODER.decode(data.decode("utf-8").removeprefix("\ufeff"))
    return _DECODER.decode(data)


@dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> dict[str, Any]:
        try:
            value = loads(self.payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Rejected(f"the {self.type or 'envelope'} item is not valid JSON") from None
        if not isinstance(value, dict):
            raise Rejected(f"the {self.type or 'envelope'} item is not a JSON object")
        return value


@dataclass(frozen=True)
class Envelope:
    headers: dict[str, Any]
    items: list[Item]


def _json_line(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = loads(data) if data.strip() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Rejected(f"the {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Rejected(f"the {what} is not a JSON object")
    return value


def parse_envelope(data: bytes) -> Envelope:
    """Split an envelope into its header and items; ``Rejected`` if it is malformed."""
    end = data.find(b"\n")
    if end < 0:
        end = len(data)
    headers = _json_line(data[:end], "envelope header")
    position = end + 1
    items: list[Item] = []
    size = len(data)
    while position < size:
        end = data.find(b"\n", position)
        if end < 0:
            end = size
        line = data[position:end]
        position = end + 1
        if not line.strip():
            continue
        item_headers = _json_line(line, "item header")
        length = item_headers.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise Rejected("an item header has a length that is not a non-negative integer")
            if position + length > size:
                raise Rejected("an item is shorter than its header's length says")
            payload = data[position : position + length]
            position += length
            if position < size and data[position : position + 1] == b"\n":
                position += 1
        else:
            end = data.find(b"\n", position)
            if end < 0:
                end = size
            payload = data[position:end]
            position = end + 1
        items.append(Item(item_headers, payload))
    return Envelope(headers, items)
