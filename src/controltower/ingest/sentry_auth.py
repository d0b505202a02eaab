"""The DSN public key a Sentry SDK authenticates with, wherever it put it.

Sentry SDKs send ``X-Sentry-Auth: Sentry sentry_key=<key>, sentry_version=7, ...``;
browsers and some SDKs use the ``sentry_key`` query parameter; envelopes may
also carry the whole DSN in their header line.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


def parse_auth_header(value: str) -> dict[str, str]:
    """``"Sentry sentry_key=abc, sentry_version=7"`` -> ``{"sentry_key": "abc", ...}``."""
    text = value.strip()
    if text[:7].lower() == "sentry ":
        text = text[7:]
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, item = part.strip().partition("=")
        if sep:
            fields[key.strip()] = item.strip()
    return fields


def key_from_dsn(dsn: str) -> str:
    """The public key in a DSN such as ``https://<key>@host/1``; empty if none."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return ""
    return parts.username or ""


def public_key(headers: Mapping[str, str], query: Mapping[str, str], envelope_dsn: str = "") -> str:
    """The public key from the auth header, else the query string, else the envelope DSN."""
    for name in ("x-sentry-auth", "authorization"):
        value = headers.get(name, "")
        if value.lower().startswith("sentry "):
            key = parse_auth_header(value).get("sentry_key", "")
            if key:
                return key
    key = query.get("sentry_key", "")
    if key:
        return key
    return key_from_dsn(envelope_dsn) if envelope_dsn else ""
