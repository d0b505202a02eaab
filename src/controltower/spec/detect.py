"""Look at a folder and say what it holds, with the evidence for each finding.

What ``tower init`` and the generators read from a repository, never guessed
from a preset:

* the stack and how it starts: the ASGI/WSGI module and variable (``main:app``,
  ``app.main:app``), Django's ``<project>.wsgi``/``asgi`` module, a worker
  script, ``next start`` or Next.js standalone output (``node server.js``);
* the package manager and its lockfile;
* the environment variables the code and the ``.env*`` files use;
* the platform, from its own files (fly.toml, vercel.json, Procfile, ...), or
  ``unknown`` when nothing points at one; and the deploy driver that fits it;
* the health routes the app declares.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controltower.spec import nextconfig

ASGI_FRAMEWORKS = ("fastapi", "starlette", "quart", "litestar", "sanic", "channels", "django-ninja")
WSGI_FRAMEWORKS = ("flask", "django", "bottle", "pyramid", "falcon")
ENVIRONMENT_FILES = (".env.staging", ".env.production")
TEMPLATE_FILES = (".env.example", ".env.sample", ".env.template", ".env.dist")

# Folders that hold no code of the app's own (dependencies, builds, tests, tooling).
SKIPPED_DIRS = frozenset(
    {
        ".git", ".hg", ".venv", "venv", "env", ".tox", "node_modules", ".next", "dist", "build",
        "out", ".tower", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "coverage",
        "tests", "test", "__tests__", "e2e", ".github", ".vercel", "migrations", "static",
    }
)  # fmt: skip
CODE_SUFFIXES = frozenset({".py", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".mts", ".cts"})
MAX_FILES = 5000
MAX_BYTES = 1_000_000

# Variables the platform or the runtime sets: the app reads them, nobody configures them.
PROVIDED = frozenset(
    {
        "PORT", "HOST", "HOSTNAME", "NODE_ENV", "HOME", "PATH", "PWD", "USER", "CI", "TZ",
        "NEXT_RUNTIME", "NEXT_PHASE", "PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV",
        "WEB_CONCURRENCY",
    }
)  # fmt: skip
PROVIDED_PREFIXES = ("FLY_", "VERCEL_", "NEXT_PUBLIC_VERCEL_", "GITHUB_", "RUNNER_")

_PY_REQUIRED = re.compile(r"""\b(?:os\.)?environ\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\]""")
_PY_GET = re.compile(
    r"""\b(?:os\.environ\.get|environ\.get|os\.getenv|getenv)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*(,)?"""
)
_PY_DJANGO_ENVIRON = re.compile(
    r"""\benv(?:\.(?:str|bool|int|float|list|url|db|db_url|json))?\(\s*["']([A-Z_][A-Z0-9_]*)["']\s*(,)?"""
)
_JS_DOT = re.compile(
    r"""\b(?:process\.env|import\.meta\.env)\.([A-Za-z_][A-Za-z0-9_]*)(\s*(?:\?\?|\|\|))?"""
)
_JS_INDEX = re.compile(
    r"""\b(?:process\.env|import\.meta\.env)\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\](\s*(?:\?\?|\|\|))?"""
)
_JS_DESTRUCTURE = re.compile(r"""\{([^{}]*)\}\s*=\s*process\.env\b""")
_PRISMA_ENV = re.compile(r"""\benv\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\)""")
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", re.MULTILINE)

_APP_OBJECT = re.compile(
    r"^(\w+)\s*(?::\s*[\w.\[\]]+\s*)?=\s*(?:[\w.]+\.)?"
    r"(FastAPI|Starlette|Flask|Quart|Litestar|Sanic|Bottle|Falcon|App)\(",
    re.MULTILINE,
)
_FACTORY = re.compile(r"^def (create_app|make_app|app_factory)\(", re.MULTILINE)
_FACTORY_CALL = re.compile(
    r"^(app|application)\s*=\s*(?:[\w.]+\.)?(create_app|make_app|app_factory|get_wsgi_application|get_asgi_application)\(",
    re.MULTILINE,
)
_ASGI_CLASSES = frozenset({"FastAPI", "Starlette", "Quart", "Litestar", "Sanic"})
_HEALTH_STRING = re.compile(
    r"""["'](/[A-Za-z0-9_/-]*health[A-Za-z0-9_/-]*)["']|\b(?:re_)?path\(\s*["']\^?([A-Za-z0-9_/-]*health[A-Za-z0-9_/-]*)\$?["']"""
)
_MAIN_GUARD = re.compile(r"""^if __name__ == ["']__main__["']:""", re.MULTILINE)
_PREFERRED_MODULES = ("main", "app", "asgi", "wsgi", "server", "api", "application")


@dataclass
class EnvUse:
    """One environment variable the repository uses, and where."""

    name: str
    sources: list[str] = field(default_factory=list)
    required: bool = False
    secret: bool = False
    client: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Detected:
    """What ``tower init`` found, with the evidence for each finding."""

    name: str
    stack: str = "other"
    target: str = "unknown"
    port: int = 8080
    framework: str = ""
    fly_app: str = ""
    vercel_project: str = ""
    vercel_team: str = ""
    memory: str = ""
    region: str = ""
    env_files: list[str] = field(default_factory=list)
    has_dockerfile: bool = False
    evidence: list[str] = field(default_factory=list)
    entrypoint: str = ""
    server: str = ""
    package_manager: str = ""
    lockfile: str = ""
    env_vars: dict[str, EnvUse] = field(default_factory=dict)
    provided_vars: list[str] = field(default_factory=list)
    health_paths: list[str] = field(default_factory=list)
    health_fields: dict[str, list[str]] = field(default_factory=dict)
    """Per Next.js health route: the fields its source answers with (status, version)."""
    scanned: bool = False

    @property
    def preset(self) -> str:
        if self.stack not in ("nextjs", "node"):
            return "python-asgi"
        return "nextjs-fly" if self.target == "fly" else "nextjs"

    @property
    def base_env_files(self) -> list[str]:
        """The env files every environment reads (not ``.env.production`` and the like)."""
        return [name for name in self.env_files if not name.startswith(ENVIRONMENT_FILES)]

    @property
    def driver(self) -> str:
        """The deploy driver that fits the platform: Fly's API on Fly, commands elsewhere."""
        if self.target == "fly":
            return "fly"
        if self.target == "vercel":
            return "vercel"
        if self.target == "local":
            return "local"
        return "exec"

    @property
    def serve_command(self) -> str:
        """The command that serves a Python app, for the local deploy driver."""
        entry = self.entrypoint or "app:app"
        if " " in entry:
            return entry
        if self.stack == "python-wsgi":
            return f"gunicorn {entry} --bind 127.0.0.1:{{port}}"
        return f"uvicorn {entry} --host 127.0.0.1 --port {{port}}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stack": self.stack,
            "framework": self.framework,
            "entrypoint": self.entrypoint,
            "server": self.server,
            "target": self.target,
            "driver": self.driver,
            "package_manager": self.package_manager,
            "lockfile": self.lockfile,
            "port": self.port,
            "region": self.region,
            "health_paths": self.health_paths,
            "env_vars": [use.to_dict() for use in self.env_vars.values()],
            "provided_vars": self.provided_vars,
            "env_files": self.env_files,
            "evidence": self.evidence,
        }


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


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            return ""
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


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


def code_files(root: Path) -> Iterator[Path]:
    """The app's own source files, dependency, build and test folders left out."""
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix in CODE_SUFFIXES or name == "schema.prisma":
                count += 1
                if count > MAX_FILES:
                    return
                yield path


# ---- Node --------------------------------------------------------------------------------

NODE_LOCKFILES = (
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
)


def next_standalone(root: Path) -> bool:
    """next.config.* sets ``output: "standalone"``."""
    config = nextconfig.find(root)
    return bool(config and config.standalone)


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
    for lockfile, manager in NODE_LOCKFILES:
        if (root / lockfile).is_file():
            found.package_manager, found.lockfile = manager, lockfile
            found.evidence.append(f"{lockfile}: package manager {manager}")
            break
    else:
        declared = manifest.get("packageManager")
        manager = declared.split("@")[0] if isinstance(declared, str) else "npm"
        found.package_manager = manager if manager in ("npm", "pnpm", "yarn", "bun") else "npm"
        found.evidence.append(f"no lockfile: package manager {found.package_manager}")
    if "next" in deps:
        found.stack, found.framework, found.port = "nextjs", "next", 3000
        found.evidence.append(f"package.json depends on next {deps['next']}")
        config = nextconfig.find(root)
        if config and config.standalone:
            found.entrypoint, found.server = "node server.js", "standalone"
            found.evidence.append(
                f"{config.name if config else 'next.config'} sets output: standalone"
            )
        else:
            found.entrypoint, found.server = "next start", "next start"
            found.evidence.append(
                f"{config.name if config else 'no next.config'}: no standalone output, so next start"
            )
        return
    found.stack, found.port = "node", 3000
    scripts = manifest.get("scripts") if isinstance(manifest.get("scripts"), dict) else {}
    start = (scripts or {}).get("start")
    if isinstance(start, str) and start:
        found.entrypoint, found.server = start, "command"
    elif isinstance(manifest.get("main"), str):
        found.entrypoint, found.server = f"node {manifest['main']}", "command"
    found.evidence.append("package.json without next: a Node app")


# ---- Python ------------------------------------------------------------------------------

PYTHON_LOCKFILES = (
    ("uv.lock", "uv"),
    ("poetry.lock", "poetry"),
    ("Pipfile.lock", "pipenv"),
    ("requirements.txt", "pip"),
)


def _module_of(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _python_candidates(root: Path) -> list[Path]:
    files = [p for p in code_files(root) if p.suffix == ".py"]
    shallow = [p for p in files if len(p.relative_to(root).parts) <= 2]

    def rank(path: Path) -> tuple[int, int, str]:
        stem = path.stem
        order = _PREFERRED_MODULES.index(stem) if stem in _PREFERRED_MODULES else 99
        return (len(path.relative_to(root).parts), order, str(path))

    return sorted(shallow, key=rank)


def _django(root: Path, found: Detected, asgi: bool) -> bool:
    manage = root / "manage.py"
    if not manage.is_file():
        return False
    match = re.search(
        r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)\.settings["']""", _read(manage)
    )
    project = match.group(1) if match else ""
    if not project:
        for settings in sorted(root.glob("*/settings.py")):
            project = settings.parent.name
            break
    if not project:
        return False
    kind = "asgi" if asgi and (root / project / "asgi.py").is_file() else "wsgi"
    if not (root / project / f"{kind}.py").is_file():
        return False
    found.entrypoint = f"{project.replace('/', '.')}.{kind}:application"
    found.server = "uvicorn" if kind == "asgi" else "gunicorn"
    found.evidence.append(f"manage.py and {project}/{kind}.py: Django served as {found.entrypoint}")
    return True


def _python_entry(root: Path, found: Detected) -> None:
    asgi = found.stack == "python-asgi"
    if found.framework in ("django", "channels", "django-ninja") and _django(root, found, asgi):
        return
    for path in _python_candidates(root):
        text = _read(path)
        match = _APP_OBJECT.search(text)
        if match:
            variable, kind = match.group(1), match.group(2)
            module = _module_of(root, path)
            found.entrypoint = f"{module}:{variable}"
            is_asgi = kind in _ASGI_CLASSES or (kind == "App" and asgi)
            found.server = "uvicorn" if is_asgi else "gunicorn"
            if found.stack == "other":
                found.stack = "python-asgi" if is_asgi else "python-wsgi"
            found.evidence.append(
                f"{path.relative_to(root)} line {text[: match.start()].count(chr(10)) + 1}: "
                f"{variable} = {kind}(...), served as {found.entrypoint} by {found.server}"
            )
            return
        call = _FACTORY_CALL.search(text)
        if call and found.stack in ("python-asgi", "python-wsgi"):
            found.entrypoint = f"{_module_of(root, path)}:{call.group(1)}"
            found.server = "uvicorn" if found.stack == "python-asgi" else "gunicorn"
            found.evidence.append(
                f"{path.relative_to(root)}: {call.group(1)} = {call.group(2)}(), served as "
                f"{found.entrypoint} by {found.server}"
            )
            return
        factory = _FACTORY.search(text)
        if factory and found.stack == "python-wsgi":
            module = _module_of(root, path)
            found.entrypoint = f"{module}:{factory.group(1)}()"
            found.server = "gunicorn"
            found.evidence.append(
                f"{path.relative_to(root)}: application factory {factory.group(1)}()"
            )
            return
    if found.stack in ("python-asgi", "python-wsgi"):
        found.evidence.append("no application object found: set [service] entrypoint")
        return
    for path in _python_candidates(root):
        if _MAIN_GUARD.search(_read(path)):
            relative = path.relative_to(root).as_posix()
            found.stack, found.server = "python-worker", "command"
            found.entrypoint = f"python {relative}"
            found.evidence.append(
                f"{relative} runs as a script (if __name__ == '__main__'): a Python worker"
            )
            return


def _python(root: Path, found: Detected) -> None:
    has_python = (root / "pyproject.toml").is_file() or any(root.glob("requirements*.txt"))
    if not has_python and not (root / "manage.py").is_file():
        return
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
    for lockfile, manager in PYTHON_LOCKFILES:
        if (root / lockfile).is_file():
            found.package_manager, found.lockfile = manager, lockfile
            break
    else:
        found.package_manager = "pip"
    found.evidence.append(
        f"Python packages installed with {found.package_manager}"
        + (f" ({found.lockfile})" if found.lockfile else " (pyproject.toml)")
    )
    _python_entry(root, found)


# ---- Platform ----------------------------------------------------------------------------


def _fly(root: Path, found: Detected) -> None:
    fly = root / "fly.toml"
    if not fly.is_file():
        return
    found.target = "fly"
    data = _read_toml(fly)
    if isinstance(data.get("app"), str) and data["app"]:
        found.fly_app = data["app"]
        found.name = _slug(data["app"])
    if isinstance(data.get("primary_region"), str):
        found.region = data["primary_region"]
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


def _vercel(root: Path, found: Detected) -> None:
    """The project and team `vercel link` wrote to .vercel/project.json."""
    linked = root / ".vercel" / "project.json"
    if not linked.is_file():
        return
    try:
        data = json.loads(linked.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and isinstance(data.get("projectId"), str):
        found.vercel_project = data["projectId"]
        found.vercel_team = str(data.get("orgId") or "")
        found.evidence.append(
            f".vercel/project.json links project {found.vercel_project}: driver vercel"
        )


_PLATFORM_FILES = (
    ("vercel.json", "vercel", "vercel.json found: target vercel"),
    (".vercel/project.json", "vercel", ".vercel/project.json found: target vercel"),
    ("render.yaml", "other", "render.yaml found: Render (exec driver)"),
    ("railway.json", "other", "railway.json found: Railway (exec driver)"),
    ("railway.toml", "other", "railway.toml found: Railway (exec driver)"),
    ("app.yaml", "other", "app.yaml found: App Engine (exec driver)"),
    ("Procfile", "other", "Procfile found: a Heroku-style platform (exec driver)"),
)


def _platform(root: Path, found: Detected) -> None:
    _fly(root, found)
    if found.target == "unknown":
        for name, target, line in _PLATFORM_FILES:
            if (root / name).is_file():
                found.target = target
                found.evidence.append(line)
                break
    if found.target == "vercel":
        _vercel(root, found)
    if found.target == "unknown":
        for folder in ("k8s", "kubernetes", "deploy", "manifests", "helm"):
            if (root / folder).is_dir() and any(
                "kind: Deployment" in _read(path) for path in (root / folder).rglob("*.y*ml")
            ):
                found.target = "kubernetes"
                found.evidence.append(f"{folder}/ holds a Kubernetes Deployment: target kubernetes")
                break
    if (root / "Dockerfile").is_file():
        found.has_dockerfile = True
        if found.target == "unknown":
            found.target = "docker"
            found.evidence.append("Dockerfile found: target docker")
        else:
            found.evidence.append("Dockerfile found")
    if found.target == "unknown":
        found.evidence.append(
            "no platform file (fly.toml, vercel.json, Procfile, Dockerfile, ...): target unknown"
        )
    procfile = root / "Procfile"
    if procfile.is_file() and not found.entrypoint:
        web = re.search(r"^web:\s*(.+)$", _read(procfile), re.MULTILINE)
        module = (
            re.search(r"\b(?:gunicorn|uvicorn)\s+(?:[^\s]+\s+)*?([\w.]+:[\w()]+)", web.group(1))
            if web
            else None
        )
        if module:
            found.entrypoint = module.group(1)
            found.evidence.append(f"Procfile web process serves {found.entrypoint}")


# ---- Environment and health routes --------------------------------------------------------


def _provided(name: str) -> bool:
    return name in PROVIDED or name.startswith(PROVIDED_PREFIXES)


def _secret(name: str) -> bool:
    from controltower.checks.static.docker import sensitive

    upper = name.upper()
    if upper.startswith(("NEXT_PUBLIC_", "VITE_", "PUBLIC_")):
        return False
    return sensitive(name) or upper.endswith("_KEY") or upper in ("DATABASE_URL", "REDIS_URL")


def _note(found: Detected, name: str, source: str, required: bool) -> None:
    if _provided(name):
        if name not in found.provided_vars:
            found.provided_vars.append(name)
        return
    use = found.env_vars.setdefault(name, EnvUse(name))
    if source not in use.sources:
        use.sources.append(source)
    use.required = use.required or required


_ANSWER_KEY = re.compile(r"""(?<![\w.])["']?(status|version)["']?\s*:""")


def _answered_fields(text: str) -> list[str]:
    """Which of the fields ``[health] required_fields`` knows (status, version) a health route's
    source answers with."""
    return sorted({match.group(1) for match in _ANSWER_KEY.finditer(text)})


def scan_code(root: Path, found: Detected) -> None:
    """Environment variables and health routes in the app's code."""
    health: list[str] = []
    for path in code_files(root):
        text = _read(path)
        if not text:
            continue
        relative = path.relative_to(root).as_posix()

        def line(pos: int, text: str = text, relative: str = relative) -> str:
            return f"{relative}:{text.count(chr(10), 0, pos) + 1}"

        if path.suffix == ".py":
            for match in _PY_REQUIRED.finditer(text):
                _note(found, match.group(1), line(match.start()), True)
            for match in _PY_GET.finditer(text):
                _note(found, match.group(1), line(match.start()), False)
            if "environ" in text and re.search(r"\benv\s*=\s*environ\.Env\(", text):
                for match in _PY_DJANGO_ENVIRON.finditer(text):
                    _note(found, match.group(1), line(match.start()), not match.group(2))
        elif path.name == "schema.prisma":
            for match in _PRISMA_ENV.finditer(text):
                _note(found, match.group(1), line(match.start()), True)
        else:
            for pattern in (_JS_DOT, _JS_INDEX):
                for match in pattern.finditer(text):
                    _note(found, match.group(1), line(match.start()), not match.group(2))
            for match in _JS_DESTRUCTURE.finditer(text):
                for part in match.group(1).split(","):
                    name = part.split(":")[0].split("=")[0].strip()
                    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                        _note(found, name, line(match.start()), "=" not in part)
        for match in _HEALTH_STRING.finditer(text):
            route = "/" + (match.group(1) or match.group(2)).strip("/")
            if route not in health and not route.endswith((".py", ".js", ".ts")):
                health.append(route)
    for route_file in sorted(root.glob("app/**/health/**/route.*")) + sorted(
        root.glob("src/app/**/health/**/route.*")
    ):
        parts = route_file.relative_to(root).parts
        parts = parts[1:] if parts[0] == "app" else parts[2:]
        segments = [p for p in parts[:-1] if not (p.startswith("(") and p.endswith(")"))]
        route = "/" + "/".join(segments)
        if route not in health:
            health.append(route)
        found.health_fields.setdefault(route, _answered_fields(_read(route_file)))
    for page in sorted(root.glob("pages/api/**/health*.*")) + sorted(
        root.glob("src/pages/api/**/health*.*")
    ):
        relative = page.relative_to(root).with_suffix("").as_posix()
        route = "/" + relative.split("pages/", 1)[1].removesuffix("/index")
        if route not in health:
            health.append(route)
        found.health_fields.setdefault(route, _answered_fields(_read(page)))
    found.health_paths = health


def scan_env_files(root: Path, found: Detected) -> None:
    """Every name assigned in ``.env*`` files (templates included)."""
    for path in sorted(root.glob(".env*")):
        if not path.is_file():
            continue
        for match in _DOTENV_LINE.finditer(_read(path)):
            _note(found, match.group(1), path.name, False)


def _finish_env(found: Detected) -> None:
    for name, use in found.env_vars.items():
        use.secret = _secret(name)
        use.client = name.startswith("NEXT_PUBLIC_")
        in_code = any(":" in source for source in use.sources)
        if not in_code:
            use.required = True  # only .env files know it: nothing in the code gives a default
    found.env_vars = dict(sorted(found.env_vars.items()))
    found.provided_vars.sort()


def detect(root: Path) -> Detected:
    """What ``root`` holds: the stack and its entry point, the package manager, the
    platform and its driver, the env variables the code and .env files use, the health routes."""
    found = Detected(name=_slug(root.resolve().name))
    _node(root, found)
    if found.stack == "other":
        _python(root, found)
    _platform(root, found)
    found.env_files = sorted(
        path.name
        for path in root.glob(".env*")
        if path.is_file() and path.name not in TEMPLATE_FILES
    )
    if found.env_files:
        found.evidence.append("env files: " + ", ".join(found.env_files))
    scan_code(root, found)
    scan_env_files(root, found)
    _finish_env(found)
    found.scanned = True
    if found.env_vars:
        found.evidence.append(
            f"{len(found.env_vars)} environment variable"
            f"{'s' if len(found.env_vars) != 1 else ''} used: " + ", ".join(found.env_vars)
        )
    if found.health_paths:
        found.evidence.append("health routes: " + ", ".join(found.health_paths))
    return found
