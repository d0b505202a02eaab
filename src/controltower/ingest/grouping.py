"""Which issue an event belongs to: its fingerprint, computed by a versioned grouping config.

The current config (:data:`CURRENT`, ``stack:2026-12``) follows Sentry's stack-trace
grouping ("Grouping by stack trace" in Sentry's docs, strategy ``newstyle``):

- the SDK's ``fingerprint`` wins; ``{{ default }}`` in it stands for the rule below;
- exceptions group by their type and stack: in-app frames when there are any, each by its
  module or normalized file name (query strings, fragments, URL origins and content hashes
  stripped) and its function; where a frame has no usable function (anonymous functions,
  JavaScript's ``<anonymous>``, ``?``), its source line (``context_line``, whitespace
  collapsed, when shorter than 120 characters) stands in for it, so different errors thrown
  from anonymous handlers of one file stay apart. Line and column numbers never group;
- the type of a synthetic exception (``mechanism.synthetic``: the SDK made it up from a
  message or a rejected non-error value) is left out, as Sentry does;
- an exception with no stack groups by type and its value, numbers and ids made alike;
- events with no exception group by the message template, numbers and ids made alike.

The earlier config (:data:`LEGACY`, ``legacy:2026-11``: module or file + function only,
unnormalized) is kept so issues made before keep their ids: the writer looks an event up by
its current fingerprint first and, when no issue has that one, by its legacy fingerprint.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

CURRENT = "stack:2026-12"
LEGACY = "legacy:2026-11"

_VARIABLE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|0x[0-9a-f]+|\b[0-9a-f]{12,}\b|\d+",
    re.IGNORECASE,
)
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]*", re.IGNORECASE)
# A content hash in a file name: `page-4585df5bdf10dbf4.js`, `main.3f9a1c2e.js`, `app-Bx7_k2Qd.js`.
_HASH = re.compile(
    r"(?<=[.\-_])(?=[0-9a-z_]*[0-9])(?=[0-9a-z_]*[a-z])[0-9a-f]{7,}(?=[.\-_]|$)"
    r"|(?<=[.\-])(?=[A-Za-z0-9_]*[0-9])(?=[A-Za-z0-9_]*[A-Z])[A-Za-z0-9_]{8}(?=\.)",
    re.IGNORECASE,
)
# Webpack's numeric chunk ids (`chunks/652-76fd….js`, `server/chunks/806.js`) change between builds.
_CHUNK_ID = re.compile(r"(?<=/chunks/)\d+(?=[.\-])")
_ANONYMOUS = frozenset(
    {"", "?", "<anonymous>", "anonymous", "<lambda>", "<unknown>", "Object.<anonymous>"}
)
_JS_PLATFORMS = frozenset({"javascript", "node", "cocoa-javascript"})
_CONTEXT_LINE_LIMIT = 120


def normalize_filename(name: str) -> str:
    """``https://shop.example/_next/static/chunks/app/page-4585df5bdf10dbf4.js?v=2`` ->
    ``/_next/static/chunks/app/page-<hash>.js``: what stays the same from build to build."""
    name = name.split("#", 1)[0].split("?", 1)[0]
    name = _ORIGIN.sub("", name)
    if name.startswith("app:///"):
        name = name[6:]
    name = _CHUNK_ID.sub("<n>", name)
    head, _, base = name.rpartition("/")
    base = _HASH.sub("<hash>", base)
    return f"{head}/{base}" if head else base


def _frames(exception: dict[str, Any]) -> list[dict[str, Any]]:
    """Frames from an SDK payload (``stacktrace.frames``) or a stored event (``frames``)."""
    stack = exception.get("stacktrace")
    frames = stack.get("frames") if isinstance(stack, dict) else exception.get("frames")
    if isinstance(frames, list):
        return [frame for frame in frames if isinstance(frame, dict)]
    return []


def _is_js(frame: dict[str, Any], platform: str) -> bool:
    kind = str(frame.get("platform") or platform or "")
    if kind in _JS_PLATFORMS:
        return True
    name = str(frame.get("abs_path") or frame.get("filename") or "")
    return name.endswith((".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx"))


def _function(frame: dict[str, Any]) -> str:
    function = str(frame.get("function") or "").strip()
    return "" if function in _ANONYMOUS else function


def _frame_key(frame: dict[str, Any], platform: str) -> str:
    js = _is_js(frame, platform)
    module = str(frame.get("module") or "")
    filename = str(frame.get("filename") or frame.get("abs_path") or "")
    where = normalize_filename(module or filename) if js else (module or filename)
    function = _function(frame)
    if function:
        return f"{where}:{function}"
    context = " ".join(str(frame.get("context_line") or "").split())
    if context and len(context) <= _CONTEXT_LINE_LIMIT:
        return f"{where}:|{context}"
    return f"{where}:?"


def _synthetic(exception: dict[str, Any]) -> bool:
    mechanism = exception.get("mechanism")
    return isinstance(mechanism, dict) and mechanism.get("synthetic") is True


def exception_components(exceptions: Sequence[dict[str, Any]], platform: str = "") -> list[str]:
    parts: list[str] = []
    for exception in exceptions:
        frames = _frames(exception)
        if not _synthetic(exception):
            parts.append(str(exception.get("type") or "Error"))
        in_app = [frame for frame in frames if frame.get("in_app")]
        chosen = in_app or frames
        if chosen:
            parts.extend(_frame_key(frame, platform) for frame in chosen)
        else:
            parts.extend(message_components(str(exception.get("value") or "")))
    return parts


def message_components(message: str) -> list[str]:
    return [_VARIABLE.sub("<n>", message.strip())[:1000]]


def default_components(
    exceptions: Sequence[dict[str, Any]], message: str, platform: str = ""
) -> list[str]:
    if exceptions:
        return [CURRENT, "exception", *exception_components(exceptions, platform)]
    return ["message", *message_components(message)]


def _hash(parts: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()


def _custom(custom: Sequence[Any], default: list[str]) -> list[str]:
    parts: list[str] = ["custom"]
    for entry in custom:
        if entry in ("{{ default }}", "{{default}}"):
            parts.extend(default)
        else:
            parts.append(str(entry))
    return parts


def fingerprint_for(
    exceptions: Sequence[dict[str, Any]],
    message: str,
    custom: Sequence[Any] | None = None,
    *,
    platform: str = "",
) -> str:
    """The hex fingerprint of an event under the current config (SHA-256 of its components)."""
    default = default_components(exceptions, message, platform)
    return _hash(_custom(custom, default) if custom else default)


def _legacy_frame_key(frame: dict[str, Any]) -> str:
    where = frame.get("module") or frame.get("filename") or frame.get("abs_path") or ""
    return f"{where}:{frame.get('function') or '?'}"


def legacy_fingerprint_for(
    exceptions: Sequence[dict[str, Any]], message: str, custom: Sequence[Any] | None = None
) -> str:
    """The fingerprint the earlier config gave, for finding issues made before."""
    if exceptions:
        default = ["exception"]
        for exception in exceptions:
            default.append(str(exception.get("type") or "Error"))
            frames = _frames(exception)
            in_app = [frame for frame in frames if frame.get("in_app")]
            default.extend(_legacy_frame_key(frame) for frame in (in_app or frames))
    else:
        default = ["message", *message_components(message)]
    return _hash(_custom(custom, default) if custom else default)
