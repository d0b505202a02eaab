from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from controltower.spec.base import Name, Section
from controltower.units import Size


class Stack(StrEnum):
    NEXTJS = "nextjs"
    NODE = "node"
    PYTHON_ASGI = "python-asgi"
    PYTHON_WSGI = "python-wsgi"
    PYTHON_WORKER = "python-worker"
    OTHER = "other"


class Target(StrEnum):
    """Where the service runs; checks use it to tell failures from advice."""

    FLY = "fly"
    DOCKER = "docker"
    KUBERNETES = "kubernetes"
    VERCEL = "vercel"
    LOCAL = "local"
    OTHER = "other"
    UNKNOWN = "unknown"


class CpuKind(StrEnum):
    SHARED = "shared"
    PERFORMANCE = "performance"


class ServiceSpec(Section):
    """``[service]``: what the app is and where it runs."""

    name: Name
    stack: Stack = Stack.OTHER
    target: Target = Target.FLY
    description: str = ""
    version: str = "dev"
    port: int = Field(default=8080, ge=1, le=65535)
    memory: Size = 512 * 1024 * 1024
    cpus: int = Field(default=1, ge=1, le=64)
    cpu_kind: CpuKind = CpuKind.SHARED
    region: str = ""
    entrypoint: str = ""
    """How the app starts: ``module:variable`` for an ASGI/WSGI app (``main:app``,
    ``mysite.wsgi:application``), or a command (``python worker.py``, ``node server.js``)."""
    root: str = "."
    dockerfile: str = "Dockerfile"
    fly_toml: str = "fly.toml"
