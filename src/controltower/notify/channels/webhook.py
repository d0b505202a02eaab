"""A generic webhook: the documented JSON body, signed with HMAC-SHA256.

Headers::

    X-Tower-Timestamp: 1767225600
    X-Tower-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>
    Idempotency-Key: <outbox key>

A receiver recomputes the HMAC over the raw body, compares in constant time and
rejects a timestamp older than a few minutes (``verify`` does all three).
"""

from __future__ import annotations

import hashlib
import hmac

from controltower.notify import render
from controltower.notify.channels.base import USER_AGENT, Delivery, HttpChannel, HttpRequest
from controltower.spec.alerts import WebhookChannelSpec

SIGNATURE_HEADER = "X-Tower-Signature"
TIMESTAMP_HEADER = "X-Tower-Timestamp"
TOLERANCE = 300.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``b"<timestamp>." + body`` keyed by ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    body: bytes,
    *,
    timestamp: str,
    signature: str,
    now: float,
    tolerance: float = TOLERANCE,
) -> bool:
    """True if ``signature`` signs ``body`` at ``timestamp``, and that is recent enough."""
    try:
        when = int(timestamp)
    except ValueError:
        return False
    if abs(now - when) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, when, body), signature)


class WebhookChannel(HttpChannel[WebhookChannelSpec]):
    type = "webhook"

    def build_request(self, delivery: Delivery, *, now: float) -> HttpRequest:
        body = render.dumps(render.webhook_body(delivery))
        timestamp = int(now)
        headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            ("Idempotency-Key", delivery.idempotency_key),
            ("X-Tower-Event", delivery.notification.kind),
            (TIMESTAMP_HEADER, str(timestamp)),
        ]
        if self.spec.secret is not None:
            headers.append(
                (SIGNATURE_HEADER, sign(self.spec.secret.get_secret_value(), timestamp, body))
            )
        return HttpRequest("POST", self.spec.url.get_secret_value(), tuple(headers), body)
