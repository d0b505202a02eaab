"""A Sentry event payload, normalized to the fields tower stores and groups by."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controltower.ingest.errors import Rejected
from controltower.ingest.grouping import fingerprint_for, legacy_fingerprint_for
from controltower.ingest.scrub import scrub, scrub_text

LEVELS = ("debug", "info", "warning", "error", "fatal")
_LEVEL_ALIASES = {"warn": "warning", "critical": "fatal", "log": "info", "err": "error"}
_CONTEXT_KEYS = (
    "request",
    "user",
    "tags",
    "contexts",
    "extra",
    "breadcrumbs",
    "sdk",
    "modules",
    "debug_meta",
    "dist",
)


@dataclass(frozen=True)
class ParsedEvent:
    """An event ready to store: scrubbed, fingerprinted, with a title for its issue."""

    project_id: int
    event_id: str
    fingerprint: str
    timestamp: datetime
    received_at: datetime
    level: str
    environment: str
    release: str
    code: str
    message: str
    title: str
    culprit: str
    platform: str
    data: dict[str, Any]
    legacy_fingerprint: str = ""

    def row(self, issue_id: int) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "issue_id": issue_id,
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "received_at": self.received_at,
            "level": self.level,
            "environment": self.environment,
            "release": self.release,
            "code": self.code,
            "message": self.message,
            "platform": self.platform,
            "data": self.data,
        }


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = (value if isinstance(value, str) else str(value))[:limit]
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _shown(value: Any, limit: int) -> str:
    """A field shown in lists and notifications, scrubbed (a tag or a transaction
    name may carry a token)."""
    return scrub_text(_text(value, limit))[:limit]


_HEX32 = re.compile(r"[0-9a-f]{32}")


def normalize_event_id(value: Any) -> str:
    if isinstance(value, str):
        hex_id = value.replace("-", "").lower()
        if _HEX32.fullmatch(hex_id):
            return hex_id
    return uuid.uuid4().hex


# As Sentry's Relay does: an event time more than 30 days before it was received,
# or more than a minute after, is a client clock gone wrong; the receipt time stands.
MAX_PAST = timedelta(days=30)
MAX_FUTURE = timedelta(minutes=1)


def parse_timestamp(value: Any, default: datetime) -> datetime:
    """The event's time, or ``default`` (its receipt) when it is missing, unreadable
    or outside ``[default - MAX_PAST, default + MAX_FUTURE]``."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        else:
            return default
        if default - MAX_PAST <= parsed <= default + MAX_FUTURE:
            return parsed
    except (ValueError, OverflowError, OSError):
        pass
    return default


def _level(value: Any) -> str:
    level = str(value or "error").lower()
    level = _LEVEL_ALIASES.get(level, level)
    return level if level in LEVELS else "error"


def _exceptions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    raw = payload.get("exception")
    if isinstance(raw, dict):
        raw = raw.get("values")
    if not isinstance(raw, list):
        return []
    return [value for value in raw if isinstance(value, dict)]


def _message(payload: dict[str, Any]) -> tuple[str, str]:
    """(formatted message, template): the template groups, the formatted text shows."""
    for key in ("logentry", "message"):
        value = payload.get(key)
        if isinstance(value, dict):
            formatted = value.get("formatted") or value.get("message") or ""
            return _text(formatted, 8192), _text(value.get("message") or formatted, 8192)
        if isinstance(value, str) and value:
            return value[:8192], value[:8192]
    return "", ""


def _culprit(payload: dict[str, Any], exceptions: list[dict[str, Any]]) -> str:
    if payload.get("transaction"):
        return _shown(payload["transaction"], 500)
    if payload.get("culprit"):
        return _shown(payload["culprit"], 500)
    if exceptions:
        stack = exceptions[-1].get("stacktrace")
        frames = stack.get("frames") if isinstance(stack, dict) else None
        if isinstance(frames, list):
            for frame in reversed(frames):
                if isinstance(frame, dict) and frame.get("in_app", True):
                    where = frame.get("module") or frame.get("filename") or "?"
                    return _shown(f"{where} in {frame.get('function') or '?'}", 500)
    return ""


def _code(payload: dict[str, Any], exceptions: list[dict[str, Any]]) -> str:
    tags = payload.get("tags")
    if isinstance(tags, dict):
        for key in ("code", "error_code", "error.code"):
            if tags.get(key):
                return _shown(tags[key], 200)
    elif isinstance(tags, list):
        for entry in tags:
            if isinstance(entry, list) and len(entry) == 2 and entry[0] in ("code", "error_code"):
                return _shown(entry[1], 200)
    if exceptions:
        return _shown(exceptions[-1].get("type"), 200)
    return ""


_FRAME_KEYS = (
    "filename",
    "abs_path",
    "module",
    "function",
    "lineno",
    "colno",
    "in_app",
    "context_line",
    "pre_context",
    "post_context",
    "vars",
    "platform",
)
_PLAIN = (int, float, bool, type(None))


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    """The frame's known fields, scrubbed (source lines and variables may hold secrets)."""
    out: dict[str, Any] = {}
    for key in _FRAME_KEYS:
        if key in frame:
            value = frame[key]
            kind = type(value)
            if kind is str:
                out[key] = scrub_text(value)
            elif kind in _PLAIN:
                out[key] = value
            else:
                out[key] = scrub(value)
    return out


def _stack(exceptions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chain = []
    for exception in exceptions:
        stack = exception.get("stacktrace")
        frames = stack.get("frames") if isinstance(stack, dict) else None
        mechanism = exception.get("mechanism")
        chain.append(
            {
                "type": scrub_text(_text(exception.get("type"), 200)),
                "value": scrub_text(_text(exception.get("value"), 8192)),
                "module": scrub_text(_text(exception.get("module"), 200)),
                "mechanism": scrub(mechanism) if isinstance(mechanism, dict) else None,
                "frames": [
                    _frame(frame)
                    for frame in (frames if isinstance(frames, list) else [])
                    if isinstance(frame, dict)
                ],
            }
        )
    return chain


def parse_event(
    payload: dict[str, Any],
    *,
    project_id: int,
    received_at: datetime,
    event_id: Any = None,
    default_environment: str = "",
) -> ParsedEvent:
    """Normalize one Sentry event: fields, scrubbed context, fingerprint and title."""
    if not isinstance(payload, dict):
        raise Rejected("the event is not a JSON object")
    exceptions = _exceptions(payload)
    message, template = _message(payload)
    fingerprint_value = payload.get("fingerprint")
    custom = fingerprint_value if isinstance(fingerprint_value, list) else None
    platform = _shown(payload.get("platform"), 50)
    fingerprint = fingerprint_for(exceptions, template, custom, platform=platform)
    if exceptions:
        last = exceptions[-1]
        kind = _text(last.get("type") or "Error", 200)
        value = _text(last.get("value"), 300)
        title = f"{kind}: {value}" if value else kind
    else:
        title = (message.splitlines() or ["<no message>"])[0]
    context = {key: payload[key] for key in _CONTEXT_KEYS if key in payload}
    data: dict[str, Any] = {"exception": _stack(exceptions), **scrub(context)}
    if template and template != message:
        data["template"] = scrub_text(template)
    if custom:
        data["fingerprint"] = [scrub_text(_text(entry, 200)) for entry in custom]
    return ParsedEvent(
        project_id=project_id,
        event_id=normalize_event_id(payload.get("event_id") or event_id),
        fingerprint=fingerprint,
        timestamp=parse_timestamp(payload.get("timestamp"), received_at),
        received_at=received_at,
        level=_level(payload.get("level")),
        environment=_shown(payload.get("environment") or default_environment, 100),
        release=_shown(payload.get("release"), 200),
        code=_code(payload, exceptions),
        message=scrub_text(message),
        title=scrub_text(title)[:500],
        culprit=_culprit(payload, exceptions),
        platform=platform,
        data=data,
        legacy_fingerprint=legacy_fingerprint_for(exceptions, template, custom),
    )
