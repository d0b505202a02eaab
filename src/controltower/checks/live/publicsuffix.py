"""Facts about host names from the lists browsers use, read offline.

``preloaded``: Chromium's HSTS preload list, from the ``hstspreload`` package
(a snapshot of ``transport_security_state_static.json``, force-https entries;
a parent entry counts for its subdomains when it includes them).
``registrable_domain``: the eTLD+1 under the Public Suffix List's ICANN
section, from ``tldextract``'s bundled snapshot (never fetched at run time);
an unknown top-level domain is a public suffix by the list's ``*`` rule, as
the Observatory's ``tldts`` treats it.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any


def preloaded(host: str) -> bool:
    """Whether browsers only ever reach ``host`` over HTTPS because of the preload list."""
    import hstspreload

    name = host.lower().rstrip(".")
    if not name or _is_ip(name):
        return False
    try:
        encoded = name.encode("idna")
    except UnicodeError:
        return False
    return bool(hstspreload.in_hsts_preload(encoded))


@functools.cache
def _extractor() -> Any:
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registrable_domain(host: str) -> str | None:
    """The registrable domain (eTLD+1) of ``host``; None for IP addresses and public suffixes."""
    name = host.lower().rstrip(".")
    if not name or _is_ip(name):
        return None
    parts = _extractor()(name)
    if parts.suffix:
        return f"{parts.domain}.{parts.suffix}" if parts.domain else None
    labels = name.split(".")
    return ".".join(labels[-2:]) if len(labels) >= 2 else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
