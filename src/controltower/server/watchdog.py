"""A dead man's switch for ``tower serve`` itself: ``[server] heartbeat_url``.

Nothing inside a process can report that the process died, so the server pings
an outside service (Healthchecks.io, Better Stack, Cronitor, Uptime Kuma's push
monitors) once at start and then every ``heartbeat_interval`` (one minute); that
service alerts when the pings stop. Healthchecks.io's ping API
(https://healthchecks.io/docs/http_api/) takes GET, HEAD or POST on the check's
URL and answers 200 "OK"; an unknown check answers 404 "not found". A failed
ping is logged (with the URL cut to its host: the path is the credential) and
the next one is sent on time.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import structlog

from controltower.notify.scrub import scrub

log = structlog.get_logger("controltower.server")


class Watchdog:
    """Pings ``url`` at start and every ``interval`` seconds until ``stop`` is set."""

    name = "watchdog"

    def __init__(self, url: str, *, interval: float = 60.0, timeout: float = 10.0) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.sent = 0
        self.failed = 0

    async def ping(self, client: httpx.AsyncClient) -> bool:
        try:
            response = await client.get(self.url)
        except httpx.HTTPError as exc:
            self.failed += 1
            log.warning(
                "watchdog.ping_failed", error=scrub(f"{type(exc).__name__}: {exc}", [self.url])
            )
            return False
        if response.status_code >= 300:
            self.failed += 1
            log.warning(
                "watchdog.ping_refused",
                status=response.status_code,
                url=scrub(self.url, [self.url.rsplit("/", 1)[-1]]),
            )
            return False
        self.sent += 1
        return True

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=True) as client:
            due = loop.time()
            while not stop.is_set():
                await self.ping(client)
                due += self.interval
                if due < loop.time():  # a long stall: no burst of catch-up pings
                    due = loop.time() + self.interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
