"""Real local targets and helpers for the monitor tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from controltower.monitor import MonitorRunner, RunnerOptions
from controltower.spec import Spec
from controltower.spec.loader import parse_spec
from controltower.store import Store
from controltower.store.models import Incident, OutboxMessage
from tests.conftest import free_port


class Target:
    """An HTTP server on 127.0.0.1 whose answers a test can change, or switch off."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.body: Any = {"status": "pass"}
        self.delay = 0.0
        self.content_type = "application/json"
        self.hits = 0
        self.log: list[tuple[str, float]] = []
        self.failing: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        if self._server is not None:
            return
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.hits += 1
                target.log.append((self.path, time.monotonic()))
                if target.delay:
                    time.sleep(target.delay)
                payload = (
                    target.body if isinstance(target.body, str) else json.dumps(target.body)
                ).encode()
                self.send_response(503 if self.path in target.failing else target.status)
                self.send_header("content-type", target.content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        # Many monitors connect at once; on a loaded machine a backlog of 5 drops SYNs.
        ThreadingHTTPServer.request_queue_size = 128
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def hits_of(self, path: str, since: float = 0.0) -> list[float]:
        """When ``path`` was requested (monotonic times), oldest first."""
        return [at for hit, at in list(self.log) if hit == path and at >= since]

    def down(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None


def spec_from(text: str) -> Spec:
    return parse_spec(text, source="tower.toml", environ={})


def outbox(store: Store, kind: str | None = None) -> list[OutboxMessage]:
    with store.session() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            query = query.where(OutboxMessage.kind == kind)
        return list(session.scalars(query))


def fast_options(**changes: Any) -> RunnerOptions:
    values: dict[str, Any] = {
        "lease_ttl": 3.0,
        "flush_interval": 0.05,
        "alert_interval": 0.1,
        "jitter": False,
    }
    values.update(changes)
    return RunnerOptions(**values)


def open_incidents(store: Store) -> list[Incident]:
    with store.session() as session:
        query = select(Incident).where(Incident.open_key.is_not(None)).order_by(Incident.id)
        return list(session.scalars(query))


@contextlib.asynccontextmanager
async def running(
    spec: Spec, store: Store, *, defaults: bool = False, **options: Any
) -> AsyncIterator[MonitorRunner]:
    """A runner until the block ends; ``defaults`` uses ``tower monitor``'s own timings."""
    chosen = RunnerOptions(**options) if defaults else fast_options(**options)
    runner = MonitorRunner(spec, store, options=chosen)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.wait_for(runner.ready.wait(), 10)
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def eventually(predicate: Callable[[], Any], *, within: float, step: float = 0.05) -> Any:
    """Poll ``predicate`` in a thread until it is truthy or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        await asyncio.sleep(step)
