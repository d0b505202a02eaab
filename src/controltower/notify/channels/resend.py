"""Email through Resend's HTTP API: ``POST https://api.resend.com/emails``.

Authorization is ``Bearer <api key>``; ``Idempotency-Key`` (up to 256 characters)
makes Resend send an email once however often the request is retried within 24h.
Errors are JSON ``{"statusCode", "name", "message"}``: 429 (``rate_limit_exceeded``,
with Retry-After) and 5xx may pass later, as may 409
``concurrent_idempotent_requests``; anything else (401 ``missing_api_key``, 403,
422 ``validation_error``, 409 ``invalid_idempotent_request``) will not.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from controltower.notify import render
from controltower.notify.channels.base import (
    USER_AGENT,
    Delivery,
    HttpChannel,
    HttpRequest,
    failure_from_response,
)

API_URL = "https://api.resend.com"


class ResendChannel(HttpChannel):
    type = "resend"
    default_rate: ClassVar[float | None] = 2.0
    required = ("api_key", "sender", "to")
    # Resend sends once per Idempotency-Key for 24 hours
    # (https://resend.com/docs/dashboard/emails/idempotency-keys).
    dedup_default: ClassVar[bool | None] = True

    @property
    def endpoint(self) -> str:
        return (self.spec.api_url or API_URL).rstrip("/") + "/emails"

    def build_request(self, delivery: Delivery, *, now: float) -> HttpRequest:
        assert self.spec.api_key is not None
        note = delivery.notification
        body = {
            "from": self.spec.sender,
            "to": list(self.spec.to),
            "subject": render.subject(note, self.spec.subject_prefix),
            "html": render.email_html(delivery),
            "text": render.email_text(delivery),
        }
        return HttpRequest(
            "POST",
            self.endpoint,
            (
                ("Authorization", f"Bearer {self.spec.api_key.get_secret_value()}"),
                ("Content-Type", "application/json"),
                ("User-Agent", USER_AGENT),
                ("Idempotency-Key", delivery.idempotency_key),
            ),
            render.dumps(body),
        )

    def check_response(self, response: httpx.Response) -> str:
        if response.is_success:
            try:
                email_id = response.json().get("id", "")
            except ValueError:
                email_id = ""
            return f"resend id {email_id}" if email_id else f"HTTP {response.status_code}"
        name, message = _error(response)
        retryable = None
        if response.status_code == 409:
            retryable = name == "concurrent_idempotent_requests"
        detail = f"{name}: {message}" if name else message
        raise failure_from_response(response, detail, now=self.clock.time(), retryable=retryable)


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        data = response.json()
    except ValueError:
        return "", response.text[:200].strip()
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("name", "")), str(data.get("message", ""))[:200]
