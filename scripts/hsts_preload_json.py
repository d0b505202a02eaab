"""Print the HSTS preload list that controltower uses (the ``hstspreload`` package) in the
Observatory's ``conf/hsts-preload.json`` shape, so both grade against the same list.

The package keeps Chromium's force-https entries in a binary table; every leaf of
it is a preloaded host, and the gTLDs preloaded whole are listed apart.
"""

from __future__ import annotations

import json
import sys

import hstspreload


def entries() -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}

    def add(host: str, include_subdomains: bool) -> None:
        found[host] = {
            "includeSubDomains": include_subdomains,
            "includeSubDomainsForPinning": include_subdomains,
            "mode": "force-https",
            "pinned": False,
        }

    for tld in hstspreload._GTLD_INCLUDE_SUBDOMAINS:
        add(tld.decode("ascii"), True)
    with hstspreload.open_pkg_binary("hstspreload.bin") as f:
        for layer in hstspreload._JUMPTABLE:
            for jump in layer:
                if jump is None:
                    continue
                f.seek(jump[0])
                data = bytearray(jump[1])
                f.readinto(data)
                for is_leaf, include_subdomains, label in hstspreload._iter_entries(data):
                    if is_leaf:
                        add(label.decode("ascii"), bool(include_subdomains))
    return found


if __name__ == "__main__":
    json.dump(entries(), sys.stdout)
