"""Real local servers for the appkit tests: uvicorn and werkzeug in threads, a black hole,
Stripe and Supabase stand-ins implementing their documented answers, and redis-server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_for_port


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Run a WSGI ``app`` under werkzeug's threaded server; yield its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


class BlackHole:
    """A TCP listener that accepts connections and never answers: a hanging dependency."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


class HangingHttpServer(ThreadingHTTPServer):
    """A real HTTP server that reads each request and never answers: a hung dependency."""

    daemon_threads = True

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = 0
        super().__init__(("127.0.0.1", 0), _HangingHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _HangingHandler(BaseHTTPRequestHandler):
    server: HangingHttpServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.received += 1
        self.server.release.wait(30)


def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    return free_port()


class _ApiHandler(BaseHTTPRequestHandler):
    """Stripe ``GET /v1/balance`` and Supabase ``GET /rest/v1/`` as their docs describe them."""

    server: ApiServer

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        if self.server.status_override:
            self._json(self.server.status_override, {"error": "override"})
            return
        if self.path == "/v1/balance":
            auth = self.headers.get("Authorization", "")
            if auth != f"Bearer {self.server.stripe_key}":
                key = auth.removeprefix("Bearer ")
                self._json(
                    401,
                    {
                        "error": {
                            "message": f"Invalid API Key provided: {key[:8]}****",
                            "type": "invalid_request_error",
                        }
                    },
                )
                return
            self._json(
                200,
                {
                    "object": "balance",
                    "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
                    "livemode": False,
                    "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
                },
            )
            return
        if self.path.startswith("/rest/v1/"):
            if self.headers.get("apikey") != self.server.supabase_key:
                self._json(
                    401,
                    {
                        "message": "Invalid API key",
                        "hint": "Double check your Supabase `anon` or `service_role` API key.",
                    },
                )
                return
            self._json(200, {"swagger": "2.0", "info": {"title": "PostgREST API"}, "paths": {}})
            return
        if self.path == "/status":
            self._json(200, {"ok": True})
            return
        self._json(404, {"error": "not found"})


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        stripe_key: str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        supabase_key: str = "eyJhbGciOiJIUzI1NiJ9.anon.sig",
    ) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.stripe_key = stripe_key
        self.supabase_key = supabase_key
        self.status_override = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free port (scripts/redis.sh installs it for CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("TOWER_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed (scripts/redis.sh installs it)")
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(5)


def timed(function: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started
