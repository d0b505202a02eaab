"""Tell a heartbeat monitor that a backup ran: GET its URL, or ``<url>/fail`` on failure."""

from __future__ import annotations

import httpx


def ping_url(url: str, *, ok: bool) -> str:
    return url if ok else url.rstrip("/") + "/fail"


def ping(url: str, *, ok: bool, timeout: float = 10.0) -> str:
    """Ping ``url``; return "" when it answered 2xx, else what went wrong (never raises)."""
    if not url:
        return ""
    target = ping_url(url, ok=ok)
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"heartbeat {target} failed: {exc}"
    if response.status_code >= 300:
        return f"heartbeat {target} answered {response.status_code}"
    return ""
