"""Server-rendered pages. The dashboard adds its routes here."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
