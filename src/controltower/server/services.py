"""Background services that run inside ``tower serve`` for as long as the server does.

A service is anything with a ``name`` and ``async run(stop)``: it works until
``stop`` is set, then finishes what it holds (the ingest writer flushes its
buffer) and returns. The server starts every service in its lifespan and, on
shutdown, sets ``stop`` and waits for them up to a deadline.

To add one (the monitor scheduler, the notification dispatcher), append it to
``ServerContext.services`` or register a factory with ``register_service``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from controltower.server.context import ServerContext

log = logging.getLogger("controltower.server")


@runtime_checkable
class Service(Protocol):
    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


ServiceFactory = Callable[["ServerContext"], "Service | None"]

_factories: dict[str, ServiceFactory] = {}


def register_service(name: str, factory: ServiceFactory) -> None:
    """Have ``tower serve`` build and run a service from the server context.

    The factory returns None when the service has nothing to do (no monitors...).
    """
    _factories[name] = factory


def registered_services() -> dict[str, ServiceFactory]:
    return dict(_factories)


class ServiceRunner:
    """Runs services as tasks; a service that crashes is logged and restarted with backoff."""

    def __init__(self, services: list[Service], *, shutdown_timeout: float = 20.0) -> None:
        self.services = services
        self.shutdown_timeout = shutdown_timeout
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.stop = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._supervise(service), name=f"service:{service.name}")
            for service in self.services
        ]

    async def _supervise(self, service: Service) -> None:
        delay = 1.0
        while True:
            try:
                await service.run(self.stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service %s failed; restarting in %.0fs", service.name, delay)
            if self.stop.is_set():
                return
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, 60.0)

    async def shutdown(self) -> None:
        self.stop.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self.shutdown_timeout)
        for task in pending:
            log.error("service %s did not stop in time; cancelling it", task.get_name())
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        self._tasks = []

    @property
    def running(self) -> list[str]:
        return [task.get_name().removeprefix("service:") for task in self._tasks if not task.done()]
