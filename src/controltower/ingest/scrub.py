"""Scrub secrets from events before they are stored: passwords, tokens, card numbers.

Values under a sensitive key (``password``, ``token``, ``authorization``, ``cookie``...)
become ``[Filtered]``; inside any string, card numbers that pass the Luhn check,
bearer tokens, tower tokens, URL credentials (``scheme://user:password@``),
``secret=value`` pairs (query strings included), quoted secrets assigned in code
(``password = "..."`` in a frame's source lines), keys of well-known formats
(Stripe ``sk_live_...`` and ``whsec_...``, Resend, GitHub, Slack tokens, AWS,
Supabase, OpenAI, Google, npm, PostHog personal keys, JSON Web Tokens), webhook
URLs that are their own secret (Slack, Discord) and PEM private keys are replaced.
"""

from __future__ import annotations

import functools
import re
from typing import Any

FILTERED = "[Filtered]"

SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|api[-_]?key|auth|credential|cookie|session"
    r"|csrf|xsrf|private[-_]?key|card[-_]?(number|num)|cc[-_]?num|cvv|cvc|ssn|dsn",
    re.IGNORECASE,
)
_NOT_SENSITIVE = frozenset({"author", "authors", "session_id_hash"})
_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")
_SECRET_TEXT = re.compile(
    r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|tower_[A-Za-z0-9_-]{16,}"
    r"|(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"
    r"|(?<![^?&;\s])(?:password|passwd|pwd|secret|token|api_?key|access_token|auth"
    r"|sentry_key|signature|sig)=[^&\s;#]+"
)
# A secret written into code or config text, as source lines in stack frames show it:
# ``password = "..."``, ``"api_key": "..."``, ``TOKEN='...'``.
_ASSIGNED = re.compile(
    r"""(?i)\b(\w*(?:password|passwd|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key)"""
    r"""\w*["']?\s*[:=]\s*)(["'])[^"'\n]{3,}\2"""
)
# Keys whose format gives them away wherever they appear: Stripe secret, restricted and
# webhook-signing keys, Resend, GitHub (classic and fine-grained), Slack tokens, AWS access
# key ids, Supabase (management and secret keys), OpenAI, Google API keys, npm, PostHog
# personal keys, JSON Web Tokens; webhook URLs whose path is the secret (Slack, Discord);
# PEM private keys.
_KNOWN_KEYS = re.compile(
    r"\b(?:[sr]k_(?:live|test)_[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9]{16,}|re_[A-Za-z0-9_]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{22,}|xox[abposre]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}|sbp_[a-f0-9]{20,}|sb_secret_[A-Za-z0-9_-]{16,}"
    r"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}"
    r"|phx_[A-Za-z0-9]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"
    r"|(?:discord|discordapp)\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]+)"
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)"
)
_SUSPECT = re.compile(
    r"\d{4}|(?i:bearer|basic|tower_|://|=|k_live|k_test|whsec_|re_|gh[pousr]_|github_pat|xox"
    r"|akia|sbp_|sb_secret|sk-|aiza|npm_|phx_|eyj|hooks\.slack|discord|private key)"
)
_MAX_DEPTH = 24


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return FILTERED if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def _secret(match: re.Match[str]) -> str:
    text = match.group(0)
    head, sep, _ = text.partition("=")
    if sep and not text.lower().startswith(("bearer", "basic", "tower_")):
        return f"{head}={FILTERED}"
    if text[:6].lower() in ("bearer", "basic ") or text[:5].lower() == "basic":
        return text.split(None, 1)[0] + " " + FILTERED
    return FILTERED


# Short strings found clean before (file names, source lines, keys repeat from event
# to event): skipped next time. Only clean strings are kept, never one with a secret.
_CLEAN: dict[str, None] = {}
_CLEAN_LENGTH = 512
_CLEAN_KEPT = 50_000


def scrub_text(text: str) -> str:
    """``text`` with card numbers, tokens and credentials replaced by ``[Filtered]``.

    NUL characters, which PostgreSQL text cannot hold, become U+FFFD.
    """
    if text in _CLEAN:
        return text
    scrubbed = _scrub_text(text)
    if scrubbed is text and len(text) <= _CLEAN_LENGTH:
        if len(_CLEAN) >= _CLEAN_KEPT:
            _CLEAN.clear()
        _CLEAN[text] = None
    return scrubbed


def _scrub_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not _SUSPECT.search(text):
        return text
    scrubbed = _SECRET_TEXT.sub(_secret, text)
    scrubbed = _ASSIGNED.sub(rf"\1\2{FILTERED}\2", scrubbed)
    scrubbed = _KNOWN_KEYS.sub(FILTERED, scrubbed)
    scrubbed = _CARD.sub(_card, scrubbed)
    return text if scrubbed == text else scrubbed


@functools.lru_cache(maxsize=4096)
def is_sensitive(key: str) -> bool:
    return key.lower() not in _NOT_SENSITIVE and SENSITIVE_KEY.search(key) is not None


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` (JSON data) with every secret replaced."""
    kind = type(value)
    if kind is str:
        return value if value in _CLEAN else scrub_text(value)
    if depth > _MAX_DEPTH:
        return FILTERED
    if kind is dict:
        return _scrub_dict(value, depth)
    if kind is list:
        if len(value) == 2 and isinstance(value[0], str) and is_sensitive(value[0]):
            return [value[0], FILTERED]
        return [_scrub_item(item, depth) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return _scrub_dict(value, depth)
    if isinstance(value, list):
        return [_scrub_item(item, depth) for item in value]
    return value


_PLAIN = (int, float, bool, type(None))


def _scrub_item(item: Any, depth: int) -> Any:
    kind = type(item)
    if kind is str:
        return item if item in _CLEAN else scrub_text(item)
    if kind in _PLAIN:
        return item
    return scrub(item, depth + 1)


def _scrub_dict(value: dict[Any, Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    clean = _CLEAN
    plain = _PLAIN
    for key, item in value.items():
        if type(key) is str:
            name = key if key in clean else scrub_text(key)
            if is_sensitive(key) and item is not None and item != "":
                out[name] = FILTERED
                continue
        else:
            name = scrub_text(str(key))
        kind = type(item)
        if kind is str:
            out[name] = item if item in clean else scrub_text(item)
        elif kind in plain:
            out[name] = item
        else:
            out[name] = scrub(item, depth + 1)
    return out
