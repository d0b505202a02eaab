"""Which issue an event belongs to: its fingerprint.

In order: the SDK's ``fingerprint`` (``{{ default }}`` stands for the rule below);
else the exception types and their stack frames (module or file, and function,
of in-app frames when there are any; never line numbers or messages); else the
message template, with numbers, hex ids and UUIDs made alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

_VARIABLE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|0x[0-9a-f]+|\b[0-9a-f]{12,}\b|\d+",
    re.IGNORECASE,
)


def _frame_key(frame: dict[str, Any]) -> str:
    where = frame.get("module") or frame.get("filename") or frame.get("abs_path") or ""
    return f"{where}:{frame.get('function') or '?'}"


def exception_components(exceptions: Sequence[dict[str, Any]]) -> list[str]:
    parts: list[str] = []
    for exception in exceptions:
        parts.append(str(exception.get("type") or "Error"))
        frames = [f for f in _frames(exception) if isinstance(f, dict)]
        in_app = [f for f in frames if f.get("in_app")]
        parts.extend(_frame_key(frame) for frame in (in_app or frames))
    return parts


def _frames(exception: dict[str, Any]) -> list[Any]:
    stack = exception.get("stacktrace")
    if isinstance(stack, dict) and isinstance(stack.get("frames"), list):
        frames: list[Any] = stack["frames"]
        return frames
    return []


def message_components(message: str) -> list[str]:
    return [_VARIABLE.sub("<n>", message.strip())[:1000]]


def default_components(exceptions: Sequence[dict[str, Any]], message: str) -> list[str]:
    if exceptions:
        return ["exception", *exception_components(exceptions)]
    return ["message", *message_components(message)]


def fingerprint_for(
    exceptions: Sequence[dict[str, Any]], message: str, custom: Sequence[Any] | None = None
) -> str:
    """The hex fingerprint of an event (SHA-256 of its grouping components)."""
    if custom:
        parts: list[str] = ["custom"]
        for entry in custom:
            if entry in ("{{ default }}", "{{default}}"):
                parts.extend(default_components(exceptions, message))
            else:
                parts.append(str(entry))
    else:
        parts = default_components(exceptions, message)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()
