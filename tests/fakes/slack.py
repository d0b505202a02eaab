"""Slack's incoming webhooks, as documented at https://api.slack.com/messaging/webhooks.

``POST /services/<team>/<bot>/<token>`` with a JSON body. Answers ``200 ok``; a
malformed body ``400 invalid_payload``; a body without ``text`` and ``blocks``
``400 no_text``; an unknown URL ``404 no_service``. More than one message a
second per webhook gets ``429`` with ``Retry-After`` (set ``rate_limit``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.server import FakeServer, Request, Response

TOKEN_PATH = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


class FakeSlack(FakeServer):
    def __init__(self, port: int | None = None, *, rate_limit: bool = False) -> None:
        super().__init__(port)
        self.messages: list[dict[str, Any]] = []
        self.rate_limit = rate_limit
        self.retry_after = 1
        self._last = 0.0
        self.times: list[float] = []

    @property
    def webhook_url(self) -> str:
        return self.url + TOKEN_PATH

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != TOKEN_PATH:
            return Response(404, b"no_service", {"Content-Type": "text/plain"})
        if not request.header("Content-Type").startswith("application/json"):
            return Response(400, b"invalid_payload", {"Content-Type": "text/plain"})
        try:
            payload = json.loads(request.body)
        except ValueError:
            return Response(400, b"invalid_payload", {"Content-Type": "text/plain"})
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return Response(400, b"no_text", {"Content-Type": "text/plain"})
        now = time.monotonic()
        with self.lock:
            if self.rate_limit and now - self._last < 1.0:
                return Response(429, b"rate_limited", {"Retry-After": str(self.retry_after)})
            self._last = now
            self.messages.append(payload)
            self.times.append(now)
        return Response(200, b"ok", {"Content-Type": "text/plain"})
