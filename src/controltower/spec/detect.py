"""Look at a folder and say what stack it holds, with the evidence for each finding."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ASGI_FRAMEWORKS = ("fastapi", "starlette", "quart", "litestar", "sanic", "channels", "django-ninja")
WSGI_FRAMEWORKS = ("flask", "django", "bottle", "pyramid", "falcon")
ENVIRONMENT_FILES = (".env.staging", ".env.production")
TEMPLATE_FILES = (".env.example", ".env.sample", ".env.template", ".env.dist")


@dataclass
class Detected:
    """What ``tower init`` found, with the evidence for each finding."""

    name: str
    stack: str = "other"
    target: str = "other"
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

    @property
    def base_env_files(self) -> list[str]:
        """The env files every environment reads (not ``.env.production`` and the like)."""
        return [name for name in self.env_files if not name.startswith(ENVIRONMENT_FILES)]

    @property
    def serve_command(self) -> str:
        """The command that serves a Python app, for the local deploy driver."""
        if self.stack == "python-wsgi":
            return "gunicorn app:app --bind 127.0.0.1:{port}"
        return "uvicorn app:app --host 127.0.0.1 --port {port}"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._")
    return slug[:63].rstrip("-._") or "app"


def _requirement_name(line: str) -> str:
    return re.split(r"[\s<>=!~\[;@]", line.strip().lower(), maxsplit=1)[0].replace("_", "-")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return {}


def python_dependencies(root: Path) -> set[str]:
    """Distribution names required by pyproject.toml (PEP 621 or Poetry) and requirements*.txt."""
    names: set[str] = set()
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject)
        project = data.get("project") if isinstance(data.get("project"), dict) else {}
        deps: list[Any] = list(project.get("dependencies") or []) if project else []
        optional = project.get("optional-dependencies") if project else None
        if isinstance(optional, dict):
            for group in optional.values():
                deps += list(group or [])
        tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
        poetry = tool.get("poetry") if tool and isinstance(tool.get("poetry"), dict) else {}
        if poetry and isinstance(poetry.get("dependencies"), dict):
            deps += list(poetry["dependencies"])
        names.update(_requirement_name(str(dep)) for dep in deps)
    for requirements in sorted(root.glob("requirements*.txt")):
        try:
            lines = requirements.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                names.add(_requirement_name(line))
    names.discard("")
    return names


def _node(root: Path, found: Detected) -> None:
    package = root / "package.json"
    if not package.is_file():
        return
    try:
        manifest = json.loads(package.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        found.evidence.append("package.json is not valid JSON: ignored")
        return
    if not isinstance(manifest, dict):
        return
    deps: dict[str, Any] = {}
    for key in ("dependencies", "devDependencies"):
        if isinstance(manifest.get(key), dict):
            deps.update(manifest[key])
    if isinstance(manifest.get("name"), str) and manifest["name"]:
        found.name = _slug(manifest["name"].split("/")[-1])
    if "next" in deps:
        found.stack, found.framework, found.port = "nextjs", "next", 3000
        found.evidence.append(f"package.json depends on next {deps['next']}")
    else:
        found.stack, found.port = "node", 3000
        found.evidence.append("package.json without next: a Node app")


def _python(root: Path, found: Detected) -> None:
    deps = python_dependencies(root)
    asgi = [name for name in ASGI_FRAMEWORKS if name in deps]
    wsgi = [name for name in WSGI_FRAMEWORKS if name in deps]
    source = "pyproject.toml" if (root / "pyproject.toml").is_file() else "requirements"
    if asgi:
        found.stack, found.framework, found.port = "python-asgi", asgi[0], 8000
        found.evidence.append(f"Python dependencies ({source}) include {asgi[0]} (ASGI)")
    elif wsgi:
        found.stack, found.framework, found.port = "python-wsgi", wsgi[0], 8000
        found.evidence.append(f"Python dependencies ({source}) include {wsgi[0]} (WSGI)")


def _fly(root: Path, found: Detected) -> None:
    fly = root / "fly.toml"
    if not fly.is_file():
        return
    found.target = "fly"
    data = _read_toml(fly)
    if isinstance(data.get("app"), str) and data["app"]:
        found.fly_app = data["app"]
        found.name = _slug(data["app"])
    ports = [data.get("http_service")]
    if isinstance(data.get("services"), list):
        ports += data["services"]
    for service in ports:
        if isinstance(service, dict) and isinstance(service.get("internal_port"), int):
            found.port = service["internal_port"]
            break
    vms = data.get("vm")
    vm = vms[0] if isinstance(vms, list) and vms else vms
    if isinstance(vm, dict):
        memory = vm.get("memory") or vm.get("memory_mb")
        if isinstance(memory, str) and memory:
            found.memory = memory.replace(" ", "").lower()
        elif isinstance(memory, int) and not isinstance(memory, bool) and memory > 0:
            found.memory = f"{memory}mb"
    found.evidence.append(
        "fly.toml found: target fly" + (f" (app {found.fly_app})" if found.fly_app else "")
    )


def detect(root: Path) -> Detected:
    """What stack ``root`` holds: Next.js/Node (package.json), Python ASGI/WSGI (pyproject,
    requirements), the target (fly.toml, Dockerfile) and the env files."""
    found = Detected(name=_slug(root.resolve().name))
    _node(root, found)
    if found.stack == "other":
        _python(root, found)
    _fly(root, found)
    if (root / "Dockerfile").is_file():
        found.has_dockerfile = True
        if found.target == "other":
            found.target = "docker"
            found.evidence.append("Dockerfile found: target docker")
        else:
            found.evidence.append("Dockerfile found")
    found.env_files = sorted(
        path.name
        for path in root.glob(".env*")
        if path.is_file() and path.name not in TEMPLATE_FILES
    )
    if found.env_files:
        found.evidence.append("env files: " + ", ".join(found.env_files))
    return found
