"""Plain-HTTP checks on pooled keep-alive connections, at a small fraction of httpx's cost.

Thousands of monitors make hundreds of requests a second; a general-purpose
client spends over a millisecond of CPU on each (much more with hundreds in
flight). ``http://`` checks therefore go through the load generator's minimal
HTTP/1.1 client (``controltower.load.client``) with one idle-connection pool
per host and port. HTTPS (certificates, ``cert_days``) and redirects to follow
are left to httpx, where they cost what they cost anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from controltower.load.client import Connection, Response, Target, build_request
from controltower.spec.monitors import MonitorSpec

USER_AGENT = "controltower-monitor"
REDIRECTS = frozenset((301, 302, 303, 307, 308))


@dataclass(frozen=True)
class Fetched:
    """One answer: status, lower-cased headers, body and how long it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    latency: float


class PlainHttp:
    """Idle keep-alive connections per (host, port), reused last-in first-out."""

    def __init__(self, *, max_idle: int = 1000) -> None:
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    @staticmethod
    def handles(monitor: MonitorSpec) -> bool:
        return monitor.url.startswith("http://")

    async def fetch(self, monitor: MonitorSpec) -> Fetched:
        """Make ``monitor``'s request once; raises ConnectError, ProtocolError or TimeoutError."""
        parts = urlsplit(monitor.url)
        host, port = parts.hostname or "", parts.port or 80
        target = Target("http", host, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": USER_AGENT, **monitor.headers}
        payload = build_request(target, monitor.method, path, headers, monitor.body.encode())
        idle = self._idle.setdefault((host, port), [])
        connection = (
            idle.pop() if idle else Connection(target, timeout=monitor.timeout, ssl_context=None)
        )
        connection.timeout = monitor.timeout
        started = time.perf_counter()
        try:
            response: Response = await connection.request(
                payload, head=monitor.method.upper() == "HEAD"
            )
        except BaseException:
            connection.close()
            raise
        latency = time.perf_counter() - started
        if len(idle) < self.max_idle:
            idle.append(connection)
        else:
            connection.close()
        return Fetched(response.status, response.headers(), response.body, latency)

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
