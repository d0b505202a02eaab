"""Facts about the app that several generators need, taken from the spec and the folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from controltower.spec import Spec
from controltower.spec.detect import Detected, detect, next_standalone, python_dependencies
from controltower.spec.service import Stack, Target

NODE_IMAGE = "node:22.11.0-bookworm-slim"
PYTHON_IMAGE = "python:3.12.7-slim-bookworm"
POSTGRES_IMAGE = "postgres:16.4"


@dataclass(frozen=True)
class App:
    """What the generators know about the app."""

    name: str
    fly_app: str
    region: str
    stack: Stack
    port: int
    memory_mb: int
    cpus: int
    cpu_kind: str
    production: bool
    package_manager: str
    migration: str
    python_entry: str
    target: Target = Target.FLY
    server: str = ""
    lockfile: str = ""
    standalone: bool = True
    has_public: bool = False
    python_packages: frozenset[str] = frozenset()
    root: Path = Path(".")

    @property
    def is_node(self) -> bool:
        return self.stack in (Stack.NEXTJS, Stack.NODE)

    @property
    def wsgi(self) -> bool:
        """Served by gunicorn: a WSGI app (Flask, Django's wsgi module, a factory)."""
        return self.server == "gunicorn" or (not self.server and self.stack is Stack.PYTHON_WSGI)

    @property
    def command(self) -> bool:
        """The entry point is a command (a worker script, ``node server.js``), not module:variable."""
        return " " in self.python_entry

    @property
    def heap_mb(self) -> int:
        """Node's old-space limit: three quarters of the VM, leaving room for the rest."""
        return max(128, self.memory_mb * 3 // 4)


def package_manager(root: Path) -> str:
    if (root / "pnpm-lock.yaml").exists():
        return "pnpm"
    if (root / "yarn.lock").exists():
        return "yarn"
    return "npm"


FLY_MIN_MEMORY_MB = 512  # the floor of the fly.memory check


def entrypoint(spec: Spec, found: Detected, override: str | None) -> tuple[str, str]:
    """(entry point, server): --app-module, else [service] entrypoint, else what the repo shows."""
    entry = override or spec.service.entrypoint or found.entrypoint or "app:app"
    server = found.server if entry == found.entrypoint else ""
    if " " in entry:
        server = "command"
    return entry, server


def migration_command(root: Path, stack: Stack) -> str:
    """The release command that migrates the database, if the app shows how it migrates."""
    if (root / "prisma" / "schema.prisma").exists():
        return "npx prisma migrate deploy"
    if any((root / name).exists() for name in ("drizzle.config.ts", "drizzle.config.js")):
        return "npx drizzle-kit migrate"
    if (root / "alembic.ini").exists():
        return "alembic upgrade head"
    if (root / "manage.py").exists():
        return "python manage.py migrate --noinput"
    return ""


def fly_app_name(name: str) -> str:
    """A Fly app name from a service name: lowercase letters, digits and dashes."""
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-")
    return slug[:63].rstrip("-") or "app"


def app_facts(
    spec: Spec,
    root: Path,
    *,
    production: bool | None = None,
    migration: str | None = None,
    python_entry: str | None = None,
) -> App:
    service = spec.service
    found = detect(root)
    entry, server = entrypoint(spec, found, python_entry)
    memory_mb = max(256, service.memory // (1024 * 1024))
    if service.target is Target.FLY:
        memory_mb = max(FLY_MIN_MEMORY_MB, memory_mb)
    env = spec.environments.get(spec.environment or "")
    production_env = spec.environments.get("production")
    fly_app = (
        spec.deploy.fly.app
        or (env.fly_app if env else "")
        or (production_env.fly_app if production_env else "")
        or fly_app_name(service.name)
    )
    return App(
        name=service.name,
        fly_app=fly_app,
        region=service.region or spec.deploy.fly.region or "iad",
        stack=service.stack,
        port=service.port,
        memory_mb=memory_mb,
        cpus=service.cpus,
        cpu_kind=service.cpu_kind.value,
        production=(spec.is_production if spec.environment else True)
        if production is None
        else production,
        package_manager=package_manager(root),
        migration=migration_command(root, service.stack) if migration is None else migration,
        python_entry=entry,
        target=service.target,
        server=server,
        lockfile=found.lockfile,
        standalone=next_standalone(root) or not (root / "package.json").exists(),
        has_public=(root / "public").is_dir(),
        python_packages=frozenset(python_dependencies(root)),
        root=root,
    )
