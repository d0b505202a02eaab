"""Any service Apprise knows (Discord, Teams, Telegram, ntfy, PagerDuty, ...), by its URL.

Apprise reports only success or failure, so every failure is retried until the
outbox gives up; its log lines, scrubbed of the URL, become the error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import apprise
import httpx

from controltower.notify import render
from controltower.notify.channels.base import Channel, Delivery, DeliveryFailed

NOTIFY_TYPES = {
    "critical": apprise.NotifyType.FAILURE,
    "error": apprise.NotifyType.FAILURE,
    "warning": apprise.NotifyType.WARNING,
}


class AppriseChannel(Channel):
    type = "apprise"
    required = ("url",)
    dedup_default: ClassVar[bool | None] = None

    def notify_type(self, delivery: Delivery) -> apprise.NotifyType:
        note = delivery.notification
        if note.kind in render.GOOD_KINDS:
            return apprise.NotifyType.SUCCESS
        return NOTIFY_TYPES.get(note.severity.lower(), apprise.NotifyType.INFO)

    async def deliver(self, delivery: Delivery, http: httpx.AsyncClient) -> str:
        return await asyncio.to_thread(self._send, delivery)

    def _send(self, delivery: Delivery) -> str:
        assert self.spec.url is not None
        sender = apprise.Apprise()
        if not sender.add(self.spec.url.get_secret_value()):
            raise DeliveryFailed(
                f"channel {self.name!r}: the Apprise URL is not valid or names a service "
                "Apprise does not know (see https://github.com/caronc/apprise/wiki)",
                retryable=False,
            )
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            ok = sender.notify(
                title=render.subject(delivery.notification),
                body=render.email_text(delivery),
                notify_type=self.notify_type(delivery),
            )
            log = captured.getvalue() if hasattr(captured, "getvalue") else ""
        if not ok:
            detail = " ".join(str(log).split())[-300:] or "Apprise reported a failure"
            raise DeliveryFailed(self.scrub(detail), retryable=True)
        return "sent through Apprise"
