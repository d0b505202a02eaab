"""One rule for "this URL is this machine": live checks that need the platform in front skip it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "0.0.0.0", "::"})


def is_local(url: str) -> bool:
    """Whether ``url`` points at this machine: localhost, 0.0.0.0, or a loopback address."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOCAL_HOSTS or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_http(url: str) -> bool:
    """A plain-http URL of this machine: HTTPS there belongs to the platform in front of it."""
    return urlsplit(url).scheme == "http" and is_local(url)
