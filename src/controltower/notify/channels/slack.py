"""Slack through an incoming webhook: one JSON POST to the webhook URL.

Slack answers ``200 ok``; a 4xx names the problem in plain text
(``invalid_payload``, ``channel_not_found``, ``channel_is_archived``,
``action_prohibited``) and will not pass on retry; 429 comes with Retry-After.
Slack allows about one message a second per webhook, so that is the default rate.
"""

from __future__ import annotations

from typing import ClassVar

from controltower.notify import render
from controltower.notify.channels.base import USER_AGENT, Delivery, HttpChannel, HttpRequest


class SlackChannel(HttpChannel):
    type = "slack"
    default_rate: ClassVar[float | None] = 1.0
    required = ("url",)
    # An incoming webhook takes no idempotency key: a message sent again is posted again.
    dedup_default: ClassVar[bool | None] = None

    def build_request(self, delivery: Delivery, *, now: float) -> HttpRequest:
        assert self.spec.url is not None
        return HttpRequest(
            "POST",
            self.spec.url.get_secret_value(),
            (("Content-Type", "application/json"), ("User-Agent", USER_AGENT)),
            render.dumps(render.slack_message(delivery, self.spec.mentions)),
        )
