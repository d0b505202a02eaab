"""What the platform fakes share: serving a Starlette app on a thread, and a traffic loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette


class ThreadedApp:
    """Subclasses give ``app_routes`` and ``send``; ``start``/``stop`` run it on 127.0.0.1."""

    port = 0
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    _traffic: threading.Thread | None = None
    _traffic_stop: threading.Event | None = None

    def app_routes(self) -> Starlette:
        raise NotImplementedError

    def send(self) -> object:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, port: int) -> str:
        self.port = port
        config = uvicorn.Config(self.app_routes(), host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return self.url

    def shutdown(self) -> None:
        self.stop_traffic()
        if self.server:
            self.server.should_exit = True
        if self.thread:
            self.thread.join(5)

    def start_traffic(self, rate: float = 50.0) -> None:
        stop = self._traffic_stop = threading.Event()

        def run() -> None:
            while not stop.wait(1 / rate):
                self.send()

        self._traffic = threading.Thread(target=run, daemon=True)
        self._traffic.start()

    def stop_traffic(self) -> None:
        if self._traffic_stop is not None:
            self._traffic_stop.set()
        if self._traffic:
            self._traffic.join(2)

    @contextmanager
    def traffic(self, rate: float = 50.0) -> Iterator[None]:
        self.start_traffic(rate)
        try:
            yield
        finally:
            self.stop_traffic()
