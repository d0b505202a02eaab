"""The JSON API, one module per resource; each exposes ``routes``.

To add a resource, write ``server/api/<resource>.py`` with a ``routes`` list of
handlers wrapped in ``requires("read" | "write")``, add it to ``MODULES`` and
document it in openapi.yaml (tests/test_server_api.py holds the two to each other).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from controltower.server.api import (
    csp,
    incidents,
    ingest,
    issues,
    monitors,
    projects,
    readiness,
    releases,
    services,
    silences,
    tokens,
    vitals,
)

MODULES = [
    services,
    monitors,
    incidents,
    silences,
    releases,
    readiness,
    projects,
    issues,
    csp,
    vitals,
    ingest,
    tokens,
]


def api_routes() -> list[BaseRoute]:
    return [route for module in MODULES for route in module.routes]
