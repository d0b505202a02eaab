"""Scrub secrets out of text that leaves the process (health output, error events)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)[^/@\s:]*(:[^/@\s]*)?@", re.IGNORECASE)
_TOKENS = re.compile(
    r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]+|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9._-]+"
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}|(?i:password|passwd|pwd)\s*=\s*\S+"
)
SECRET_KEYS = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|apikey|auth|cookie|session|dsn|credential|private",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` without credentials in URLs, API keys, bearer tokens or ``secrets``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, REDACTED)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _TOKENS.sub(REDACTED, text)


def short_reason(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """One line saying why ``exc`` happened, without secrets or a stack trace."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = redact(lines[0] if lines else "", secrets)
    if len(detail) > 200:
        detail = detail[:197] + "..."
    kind = type(exc).__name__
    return f"{detail} ({kind})" if detail else kind


def redact_mapping(values: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """Copy ``values`` with secret-looking keys masked and strings scrubbed."""
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if SECRET_KEYS.search(str(key)):
            cleaned[str(key)] = REDACTED
        elif isinstance(value, Mapping) and depth < 4:
            cleaned[str(key)] = redact_mapping(value, depth + 1)
        elif isinstance(value, str):
            cleaned[str(key)] = redact(value)
        elif value is None or isinstance(value, bool | int | float):
            cleaned[str(key)] = value
        else:
            cleaned[str(key)] = redact(repr(value))[:500]
    return cleaned
