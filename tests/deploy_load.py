"""A small constant-rate HTTP load loop for the deploy tests (asyncio streams, tower's HTTP/1 parser).

``Load(url, rate=200).start()`` runs it on a thread; ``stop()`` returns what
happened: requests sent, answered, failed (a 5xx, a refused connection, a reset,
or no answer within the timeout), and which release served each.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from controltower.http1 import Complete, MessageError, ResponseParser


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    duration: float = 0.0
    failures: list[tuple[float, str]] = field(default_factory=list)
    releases: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str, bool]] = field(default_factory=list)
    bodies: list[tuple[float, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.duration if self.duration else 0.0

    @property
    def failure_ratio(self) -> float:
        return self.failed / self.sent if self.sent else 0.0


class Load:
    def __init__(
        self,
        url: str,
        *,
        rate: float = 200.0,
        path: str = "/",
        timeout: float = 5.0,
        keep_bodies: bool = False,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = path
        self.rate = rate
        self.timeout = timeout
        self.keep_bodies = keep_bodies
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._started = 0.0

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        return self.result

    def mark(self) -> float:
        return time.monotonic() - self._started

    async def _run(self) -> None:
        self._started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        interval = 1.0 / self.rate
        count = 0
        while not self._stop.is_set():
            count += 1
            task = asyncio.create_task(self._one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            delay = self._started + count * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif count % 20 == 0:
                await asyncio.sleep(0)
        self.result.duration = time.monotonic() - self._started  # sending time: the rate's base
        if pending:
            await asyncio.wait(pending, timeout=self.timeout + 1)
        for _, writer in self._idle:
            writer.close()

    async def _one(self) -> None:
        result = self.result
        result.sent += 1
        at = time.monotonic() - self._started
        try:
            status, release, body = await asyncio.wait_for(self._request(), self.timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            result.failed += 1
            result.failures.append((at, type(exc).__name__))
            result.timeline.append((at, "", False))
            return
        result.releases[release] += 1
        if self.keep_bodies:
            result.bodies.append((at, body.decode("utf-8", "replace")))
        good = status < 500
        result.timeline.append((at, release, good))
        if good:
            result.ok += 1
        else:
            result.failed += 1
            result.failures.append((at, f"status {status} from {release}"))

    async def _request(self) -> tuple[int, str, bytes]:
        request = f"GET {self.path} HTTP/1.1\r\nhost: {self.host}\r\n\r\n".encode()
        response: Complete | None = None
        for attempt in range(2):
            pooled = bool(self._idle) and attempt == 0
            if pooled:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            parser = ResponseParser()  # tower's HTTP/1 framing: lengths, chunked, until close
            try:
                writer.write(request)
                await writer.drain()
                response = None
                while response is None:
                    data = await reader.read(65536)
                    if not data:
                        response = parser.eof()
                        if response is None:
                            raise asyncio.IncompleteReadError(b"", None)
                        break
                    response = parser.feed(data)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if pooled:
                    continue  # the server closed an idle connection: a client retries that
                raise
            except MessageError as exc:
                writer.close()
                raise ValueError(f"not an HTTP response: {exc}") from None
            break
        if response is None:
            raise asyncio.IncompleteReadError(b"", None)
        if response.head.keep_alive:
            self._idle.append((reader, writer))
        else:
            writer.close()
        release = (response.head.get(b"x-tower-release") or b"").decode("latin-1")
        return response.status, release, response.body
