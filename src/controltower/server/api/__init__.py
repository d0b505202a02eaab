"""The JSON API, one module per resource; each exposes ``routes``.

To add a resource (monitors, incidents, silences, releases, readiness), write
``server/api/<resource>.py`` with a ``routes`` list of handlers wrapped in
``requires("read" | "write")``, add it to ``MODULES`` and to openapi.yaml.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from controltower.server.api import csp, issues, projects, services, tokens

MODULES = [services, projects, issues, csp, tokens]


def api_routes() -> list[BaseRoute]:
    return [route for module in MODULES for route in module.routes]
