"""One deploy at a time per service and environment: a store lock with stale detection.

The lock names its owner (``user@host:pid``). The holder renews it while it
works; it is stale when it was not renewed for ``[deploy] lock_timeout`` (the
holder died, maybe on another machine) or when its holder is a process on this
host that no longer exists. A stale lock is taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from controltower.clock import system_clock
from controltower.exceptions import LockHeld
from controltower.store import Locks, Store, default_owner
from controltower.typing import Clock

TTL = 60.0


def lock_name(service: str, environment: str) -> str:
    return f"deploy:{service}:{environment}"


def owner_alive(owner: str) -> bool:
    """False when ``owner`` names a process on this host that is gone."""
    _, _, rest = owner.partition("@")
    host, _, pid = rest.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeployLock:
    def __init__(
        self,
        store: Store,
        name: str,
        *,
        owner: str | None = None,
        clock: Clock = system_clock,
        ttl: float = TTL,
    ) -> None:
        self.locks = Locks(store, clock=clock)
        self.ttl = ttl
        self.name = name
        self.owner = owner or default_owner()
        self.clock = clock
        self.held = False
        self._renewed = 0.0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_acquire(self, detail: dict[str, str] | None = None) -> bool:
        if self.locks.acquire(self.name, self.owner, ttl=self.ttl, detail=detail):
            self.held, self._renewed = True, self.clock.monotonic()
            self._start_renewing()
            return True
        info = self.locks.info(self.name)
        if info is not None and (info.expired or not owner_alive(info.owner)):
            self.locks.break_lock(self.name)
            return self.try_acquire(detail)
        return False

    def acquire(self, detail: dict[str, str] | None = None) -> None:
        if not self.try_acquire(detail):
            info = self.locks.info(self.name)
            raise LockHeld(
                self.name,
                info.owner if info else "someone else",
                hint="another deploy of this service is running; see `tower deploy status`",
            )

    def holder(self) -> str | None:
        """The live owner, if someone holds the lock and is not stale."""
        info = self.locks.info(self.name)
        if info is None or info.expired or not owner_alive(info.owner):
            return None
        return info.owner

    def heartbeat(self) -> None:
        if self.held and self.clock.monotonic() - self._renewed > self.ttl / 6:
            self.locks.renew(self.name, self.owner, ttl=self.ttl)
            self._renewed = self.clock.monotonic()

    def _start_renewing(self) -> None:
        """Renew from a thread too, so a long hook or platform command keeps the lock."""
        self._stop.clear()
        if self._renewer is not None and self._renewer.is_alive():
            return

        def renew() -> None:
            while not self._stop.wait(max(self.ttl / 6, 0.05)):
                with contextlib.suppress(Exception):
                    self.locks.renew(self.name, self.owner, ttl=self.ttl)

        self._renewer = threading.Thread(target=renew, name=f"renew {self.name}", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(5)
            self._renewer = None
        if self.held:
            self.locks.release(self.name, self.owner)
            self.held = False
