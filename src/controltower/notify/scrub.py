"""Keep secrets out of everything tower stores or prints about a delivery.

Channel URLs carry tokens (a Slack webhook URL *is* its credential) and error
messages from HTTP clients quote the URL they failed on. ``scrub`` removes the
known secret values, after cutting every URL down to its scheme and host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,20})://([^\s'\"<>]+)")
_HOST = re.compile(r"^(?:[^@/]*@)?([^/?#@]+)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
REDACTED = "***"
MAX_ERROR = 500


def _cut(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    trail = rest[len(rest.rstrip(":,.;)")) :]
    rest = rest[: len(rest) - len(trail)]
    if scheme.lower() in ("http", "https"):
        host = _HOST.match(rest)
        shown = host.group(1) if host else ""
        tail = "/..." if len(rest) > len(host.group(0) if host else "") else ""
        return f"{scheme}://{shown}{tail}{trail}"
    return f"{scheme}://{REDACTED}{trail}"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secret values, URL paths, credentials or bearer tokens."""
    text = _URL.sub(_cut, text)
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if len(text) > MAX_ERROR:
        text = text[: MAX_ERROR - 3] + "..."
    return text
