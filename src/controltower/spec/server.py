from __future__ import annotations

from pydantic import Field

from controltower.spec.base import Section
from controltower.units import Size


class ProjectSpec(Section):
    """``[[server.projects]]``: an error-tracking project with its own DSN."""

    name: str
    rate_limit: int = Field(default=600, ge=1)


class ServerSpec(Section):
    """``[server]``: the process that serves the API, dashboard and status page."""

    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=0, le=65535)
    public_url: str = ""
    title: str = ""
    max_event_size: Size = 1024 * 1024
    projects: list[ProjectSpec] = Field(default_factory=list)
