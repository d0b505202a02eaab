"""Sentry envelopes: a header line, then items of an item header line and a payload.

An item header gives the payload ``length`` in bytes, or omits it and the payload
runs to the next newline. See develop.sentry.dev/sdk/data-model/envelopes/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controltower.ingest.errors import Rejected, TooLarge
from controltower.ingest.limits import IngestLimits, load_object


@dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self, limits: IngestLimits | None = None) -> dict[str, Any]:
        """The payload as a JSON object, normalized within ``limits``."""
        return load_object(
            self.payload, limits or IngestLimits(), f"{self.type or 'envelope'} item"
        )


@dataclass(frozen=True)
class Envelope:
    headers: dict[str, Any]
    items: list[Item]


def _json_line(data: bytes, what: str, limits: IngestLimits) -> dict[str, Any]:
    return load_object(data, limits, what) if data.strip() else {}


def envelope_header(data: bytes, limits: IngestLimits | None = None) -> dict[str, Any]:
    """The envelope's header line (the first line of ``data``)."""
    end = data.find(b"\n")
    return _json_line(
        data[: end if end >= 0 else len(data)], "envelope header", limits or IngestLimits()
    )


def parse_envelope(data: bytes, limits: IngestLimits | None = None) -> Envelope:
    """Split an envelope into its header and items; ``Rejected`` if it is malformed,
    ``TooLarge`` past ``max_envelope_items`` items."""
    limits = limits or IngestLimits()
    end = data.find(b"\n")
    if end < 0:
        end = len(data)
    headers = _json_line(data[:end], "envelope header", limits)
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
        if len(items) >= limits.max_envelope_items:
            raise TooLarge(
                f"the envelope has more than {limits.max_envelope_items} items "
                "([server] max_envelope_items)",
                cap="max_envelope_items",
            )
        item_headers = _json_line(line, "item header", limits)
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
