from __future__ import annotations

from typing import Any

from pydantic import Field

from controltower.spec.base import HttpUrl, Section


class EnvironmentSpec(Section):
    """``[environments.<name>]``: where one environment lives, and what differs there.

    ``overrides`` holds any top-level tables (``deploy``, ``health``, ...) that are
    merged over the base spec when ``--env <name>`` is chosen.
    """

    url: HttpUrl | None = None
    production: bool | None = None
    env_files: list[str] = Field(default_factory=list)
    fly_app: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)

    def is_production(self, name: str) -> bool:
        if self.production is not None:
            return self.production
        return name in ("production", "prod")
