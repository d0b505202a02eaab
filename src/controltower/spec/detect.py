"""Look at a folder and say what stack it holds."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ASGI = ("fastapi", "starlette", "quart", "litestar", "sanic", "channels", "django-ninja")
_WSGI = ("flask", "django", "bottle", "pyramid", "falcon")


@dataclass
class Detected:
    """What ``tower init`` found, with the evidence for each finding."""

    name: str
    stack: str = "other"
    target: str = "docker"
    port: int = 8080
    framework: str = ""
    fly_app: str = ""
    memory: str = ""
    env_files: list[str] = field(default_factory=list)
    has_dockerfile: bool = False
    evidence: list[str] = field(default_factory=list)

    @property
    def preset(self) -> str:
        return "nextjs-fly" if self.stack in ("nextjs", "node") else "python-asgi"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.") or "app"
    return slug[:63]


def _python_deps(root: Path) -> set[str]:
    names: set[str] = set()
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
            data = {}
        project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
        deps = list(project.get("dependencies", []) or [])
        poetry = (
            data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
        )
        deps += list((poetry.get("dependencies") or {}).keys()) if isinstance(poetry, dict) else []
        names.update(
            re.split(r"[\s<>=!~\[;]", str(dep).strip().lower(), maxsplit=1)[0] for dep in deps
        )
    for requirements in sorted(root.glob("requirements*.txt")):
        try:
            lines = requirements.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip().lower()
            if line and not line.startswith("-"):
                names.add(re.split(r"[\s<>=!~\[;]", line, maxsplit=1)[0])
    return names


def detect(root: Path) -> Detected:
    found = Detected(name=_slug(root.resolve().name))
    package = root / "package.json"
    if package.is_file():
        try:
            manifest = json.loads(package.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            manifest = {}
        if isinstance(manifest, dict):
            node_deps = {
                **(manifest.get("dependencies") or {}),
                **(manifest.get("devDependencies") or {}),
            }
            if isinstance(manifest.get("name"), str):
                found.name = _slug(manifest["name"].split("/")[-1])
            if "next" in node_deps:
                found.stack, found.framework, found.port = "nextjs", "next", 3000
                found.evidence.append(f"package.json depends on next {node_deps['next']}")
            else:
                found.stack, found.port = "node", 3000
                found.evidence.append("package.json without next: a Node app")
    if found.stack == "other":
        python_deps = _python_deps(root)
        asgi = [name for name in _ASGI if name in python_deps]
        wsgi = [name for name in _WSGI if name in python_deps]
        if asgi:
            found.stack, found.framework, found.port = "python-asgi", asgi[0], 8000
            found.evidence.append(f"Python dependencies include {asgi[0]} (ASGI)")
        elif wsgi:
            found.stack, found.framework, found.port = "python-wsgi", wsgi[0], 8000
            found.evidence.append(f"Python dependencies include {wsgi[0]} (WSGI)")
    fly = root / "fly.toml"
    if fly.is_file():
        found.target = "fly"
        data: dict[str, Any]
        try:
            data = tomllib.loads(fly.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
            data = {}
        if isinstance(data.get("app"), str):
            found.fly_app = data["app"]
            found.name = _slug(data["app"])
        service = data.get("http_service")
        if isinstance(service, dict) and isinstance(service.get("internal_port"), int):
            found.port = service["internal_port"]
        vms = data.get("vm")
        if isinstance(vms, list) and vms and isinstance(vms[0], dict):
            memory = vms[0].get("memory") or vms[0].get("memory_mb")
            if memory:
                found.memory = str(memory) if isinstance(memory, str) else f"{memory}mb"
        found.evidence.append(
            "fly.toml found: target fly" + (f" (app {found.fly_app})" if found.fly_app else "")
        )
    if (root / "Dockerfile").is_file():
        found.has_dockerfile = True
        found.evidence.append("Dockerfile found")
    found.env_files = sorted(
        path.name
        for path in root.glob(".env*")
        if path.is_file() and path.name not in (".env.example", ".env.sample", ".env.template")
    )
    if found.env_files:
        found.evidence.append("env files: " + ", ".join(found.env_files))
    return found
