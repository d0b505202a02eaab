"""A notification receiver for the demo: the webhook channel's other end, on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Listener = Callable[[dict[str, Any]], None]


class Receiver:
    """Collects the JSON bodies POSTed to it and hands each to ``listener``."""

    def __init__(self, port: int, listener: Listener | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.listener = listener
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"text": raw.decode("utf-8", "replace")}
                receiver._add(body if isinstance(body, dict) else {"body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _add(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.received.append(body)
        if self.listener is not None:
            self.listener(body)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
