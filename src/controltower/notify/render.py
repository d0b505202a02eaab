"""How a notification reads on each medium: email text and HTML, Slack blocks, webhook JSON.

Every function here is pure: the same delivery always renders the same bytes, so
a retried request carries the same body as the first (receivers that deduplicate
by idempotency key may compare bodies, as Resend does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jinja2

from controltower.notify.channels.base import Delivery
from controltower.notify.message import Notification

WEBHOOK_SCHEMA = "controltower.notification/v1"
GOOD_KINDS = frozenset({"incident.resolved", "deploy.succeeded"})
COLOURS = {
    "critical": "#E01E5A",
    "error": "#E01E5A",
    "warning": "#ECB22E",
    "info": "#36C5F0",
    "good": "#2EB67D",
}
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELDS_MAX = 10

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("controltower.notify", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def colour(notification: Notification) -> str:
    """Green for good news, else by severity (red, amber, blue)."""
    if notification.kind in GOOD_KINDS:
        return COLOURS["good"]
    return COLOURS.get(notification.severity.lower(), COLOURS["info"])


def where(notification: Notification) -> str:
    """``shop/production``, ``shop`` or nothing."""
    return "/".join(part for part in (notification.service, notification.environment) if part)


def subject(notification: Notification, prefix: str = "") -> str:
    """``[tower] [CRITICAL] api is down (shop/production)``."""
    parts = [prefix] if prefix else []
    if notification.kind not in GOOD_KINDS:
        parts.append(f"[{notification.severity.upper()}]")
    parts.append(notification.title)
    place = where(notification)
    if place:
        parts.append(f"({place})")
    return " ".join(parts)


def _context(delivery: Delivery) -> dict[str, Any]:
    note = delivery.notification
    return {
        "note": note,
        "where": where(note),
        "colour": colour(note),
        "key": delivery.key,
        "created_at": delivery.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def email_text(delivery: Delivery) -> str:
    return _templates.get_template("email.txt").render(_context(delivery))


def email_html(delivery: Delivery) -> str:
    return _templates.get_template("email.html").render(_context(delivery))


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def slack_message(delivery: Delivery, mentions: Sequence[str] = ()) -> dict[str, Any]:
    """An incoming-webhook payload: fallback text, blocks, and a coloured attachment.

    Every text from the notification is escaped (``&``, ``<``, ``>``), so an event
    message holding ``<!channel>`` pages nobody; ``mentions`` come from the spec only.
    """
    note = delivery.notification
    called = " ".join(mentions)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(note.title, SLACK_HEADER_MAX)},
        }
    ]
    if note.text or called:
        body = " ".join(part for part in (called, _mrkdwn(note.text)) if part)
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(body, SLACK_TEXT_MAX)},
            }
        )
    details: list[dict[str, Any]] = []
    if note.fields:
        fields = list(note.fields.items())[:SLACK_FIELDS_MAX]
        details.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f"*{_mrkdwn(k)}*\n{_mrkdwn(v)}", 2000)}
                    for k, v in fields
                ],
            }
        )
    facts = [f"*{_mrkdwn(note.severity)}*", _mrkdwn(note.kind), _mrkdwn(where(note))]
    if note.url:
        link = _mrkdwn(note.url).replace("|", "%7C")
        facts.append(f"<{link}|open>")
    details.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": " \u00b7 ".join(f for f in facts if f)}],
        }
    )
    return {
        "text": _cut(
            " ".join(part for part in (called, _mrkdwn(subject(note))) if part), SLACK_TEXT_MAX
        ),
        "blocks": blocks,
        "attachments": [{"color": colour(note), "blocks": details}],
    }


def webhook_body(delivery: Delivery) -> dict[str, Any]:
    """The documented JSON a generic webhook receives (docs/monitor.md)."""
    note = delivery.notification
    return {
        "schema": WEBHOOK_SCHEMA,
        "id": delivery.key,
        "channel": delivery.channel,
        "kind": note.kind,
        "title": note.title,
        "text": note.text,
        "severity": note.severity,
        "service": note.service,
        "environment": note.environment,
        "url": note.url,
        "fields": dict(note.fields),
        "labels": dict(note.labels),
        "created_at": delivery.created_at.isoformat(),
    }


def dumps(body: dict[str, Any]) -> bytes:
    """Compact, key-ordered JSON: the same body always has the same bytes."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
