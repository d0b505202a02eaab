"""A webhook receiver as a careful user would write one.

It verifies ``X-Tower-Signature`` and deduplicates by ``Idempotency-Key``, and it
keeps what it received raw (``requests``) as well as what it processed
(``processed``), so a test can tell a repeated request from a repeated effect.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from controltower.notify.channels.webhook import verify
from tests.fakes.server import FakeServer, Request, Response


class WebhookReceiver(FakeServer):
    def __init__(self, secret: str = "", port: int | None = None) -> None:
        super().__init__(port)
        self.secret = secret
        self.processed: dict[str, dict[str, Any]] = {}
        self.rejected: list[Request] = []
        self.gate: threading.Event | None = None
        self.delay = 0.0
        self.status = 200

    def handle(self, request: Request) -> Response:
        if self.gate is not None:
            self.gate.wait(30)
        if self.delay:
            time.sleep(self.delay)
        if self.secret and not verify(
            self.secret,
            request.body,
            timestamp=request.header("X-Tower-Timestamp"),
            signature=request.header("X-Tower-Signature"),
            now=time.time(),
        ):
            with self.lock:
                self.rejected.append(request)
            return Response(401, b"bad signature")
        if self.status >= 300:
            return Response(self.status, b"not now")
        key = request.header("Idempotency-Key")
        with self.lock:
            if key not in self.processed:
                self.processed[key] = json.loads(request.body)
        return Response(200, b'{"ok":true}', {"Content-Type": "application/json"})

    def keys(self) -> list[str]:
        """The idempotency key of every request received, repeats included."""
        with self.lock:
            return [request.header("Idempotency-Key") for request in self.requests]
