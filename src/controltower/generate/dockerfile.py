"""Dockerfiles for Next.js (standalone output or next start) and Python apps (ASGI under
uvicorn, WSGI under gunicorn, or a worker command), and the ``.dockerignore`` beside them.

Both are multi-stage, start from a pinned base image, run as a non-root user
under tini, declare a HEALTHCHECK on the liveness path, use the JSON form of
CMD, and hold no secret in ENV or ARG. The Node heap is sized to three
quarters of the VM's memory. They pass hadolint with no warnings.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

from controltower.checks.static.docker import _assignments, baked_secrets, credential_in, sensitive
from controltower.checks.static.dockerfile import parse
from controltower.generate.common import NODE_IMAGE, PYTHON_IMAGE, App, app_facts
from controltower.generate.files import GeneratedFile, Reconciled
from controltower.spec import Spec
from controltower.spec.service import Stack, Target

_TINI = "tini=0.19.*"

_NODE_INSTALL = {
    "npm": ("package.json package-lock.json* ./", "npm ci --no-audit --no-fund"),
    "pnpm": (
        "package.json pnpm-lock.yaml ./",
        "corepack enable pnpm && pnpm install --frozen-lockfile",
    ),
    "yarn": ("package.json yarn.lock ./", "corepack enable yarn && yarn install --immutable"),
}
_NODE_BUILD = {"npm": "npm run build", "pnpm": "pnpm run build", "yarn": "yarn build"}


def _node_probe(port: int, path: str) -> str:
    script = (
        f"fetch('http://127.0.0.1:{port}{path}')"
        ".then(r => process.exit(r.ok ? 0 : 1)).catch(() => process.exit(1))"
    )
    return f'["node", "-e", "{script}"]'


def _python_probe(port: int, path: str) -> str:
    script = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=4)"
        ".status == 200 else 1)"
    )
    return f'["python", "-c", "{script}"]'


def _public(app: App) -> str:
    """COPY of public/ only when the app has one: COPY fails on a missing source."""
    if not app.has_public:
        return ""
    return "COPY --from=build --chown=1000:1000 /app/public ./public\n"


def _prune(app: App) -> str:
    """Drop dev dependencies after the build (yarn has no prune that works on every version)."""
    return {"npm": "npm prune --omit=dev", "pnpm": "pnpm prune --prod"}.get(app.package_manager, "")


def nextjs_dockerfile(spec: Spec, app: App) -> str:
    copy, install = _NODE_INSTALL[app.package_manager]
    build = _NODE_BUILD[app.package_manager]
    if app.standalone:
        about = 'standalone output (next.config sets output: "standalone")'
        build_run = f"RUN {build}"
        runtime = (
            _public(app)
            + "COPY --from=build --chown=1000:1000 /app/.next/standalone ./\n"
            + "COPY --from=build --chown=1000:1000 /app/.next/static ./.next/static"
        )
        cmd = '["node", "server.js"]'
    else:
        about = "next start (next.config has no standalone output)"
        build_run = f"RUN {build}" + (f" \\\n && {_prune(app)}" if _prune(app) else "")
        runtime = (
            _public(app)
            + "COPY --from=build --chown=1000:1000 /app/package.json ./package.json\n"
            + "COPY --from=build --chown=1000:1000 /app/node_modules ./node_modules\n"
            + "COPY --from=build --chown=1000:1000 /app/.next ./.next"
        )
        for config in ("next.config.js", "next.config.mjs", "next.config.cjs", "next.config.ts"):
            if (app.root / config).is_file():
                runtime += f"\nCOPY --from=build --chown=1000:1000 /app/{config} ./{config}"
        cmd = (
            f'["node_modules/.bin/next", "start", "--hostname", "0.0.0.0", "--port", "{app.port}"]'
        )
    return f"""# syntax=docker/dockerfile:1
# Dockerfile for {app.name} (Next.js, {about}), written by `tower generate dockerfile`.
# UID 1000 is the image's non-root "node" user.

FROM {NODE_IMAGE} AS base
WORKDIR /app
ENV NEXT_TELEMETRY_DISABLED=1

FROM base AS deps
COPY {copy}
RUN {install}

FROM base AS build
# Next.js names the build (deploymentId) from NEXT_DEPLOYMENT_ID at build time: pass
# --build-arg NEXT_DEPLOYMENT_ID=<commit> so instances and releases are told apart.
ARG NEXT_DEPLOYMENT_ID
COPY --from=deps /app/node_modules ./node_modules
COPY . .
{build_run}

FROM base AS runner
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \\
 && apt-get install -y --no-install-recommends {_TINI} \\
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \\
    PORT={app.port} \\
    HOSTNAME=0.0.0.0 \\
    NODE_OPTIONS=--max-old-space-size={app.heap_mb}
{runtime}
USER 1000:1000
EXPOSE {app.port}
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \\
  CMD {_node_probe(app.port, spec.health.liveness)}
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD {cmd}
"""


GUNICORN = "gunicorn==23.0.0"
UVICORN = "uvicorn==0.32.1"


def python_command(spec: Spec, app: App) -> list[str]:
    """The process the image runs: gunicorn for WSGI, uvicorn for ASGI, or the command as given."""
    drain = str(max(5, int(spec.deploy.drain_timeout)))
    if app.command:
        return shlex.split(app.python_entry)
    if app.wsgi:
        workers = max(2, min(2 * app.cpus + 1, app.memory_mb // 128))
        return [
            "gunicorn", app.python_entry, "--bind", f"0.0.0.0:{app.port}",
            "--workers", str(workers), "--graceful-timeout", drain,
            "--forwarded-allow-ips", "*", "--access-logfile", "-",
        ]  # fmt: skip
    return [
        "uvicorn", app.python_entry, "--host", "0.0.0.0", "--port", str(app.port),
        "--proxy-headers", "--forwarded-allow-ips", "*", "--timeout-graceful-shutdown", drain,
    ]  # fmt: skip


def _server_package(app: App) -> str:
    """The server the CMD needs when the app's own dependencies do not bring it."""
    if app.command:
        return ""
    if app.wsgi:
        return "" if "gunicorn" in app.python_packages else GUNICORN
    return "" if "uvicorn" in app.python_packages else UVICORN


def python_dockerfile(spec: Spec, app: App, root: Path) -> str:
    server = _server_package(app)
    extra = f" {server}" if server else ""
    if (root / "requirements.txt").exists():
        deps = (
            "COPY requirements.txt ./\nRUN pip install --no-cache-dir -r requirements.txt"
            f"{extra}\nCOPY . ."
        )
    else:
        deps = f"COPY . .\nRUN pip install --no-cache-dir .{extra}"
    kind = {
        "command": "a worker process",
        "gunicorn": "WSGI, served by gunicorn",
    }.get("command" if app.command else "gunicorn" if app.wsgi else "", "ASGI, served by uvicorn")
    cmd = json.dumps(python_command(spec, app))
    return f"""# syntax=docker/dockerfile:1
# Dockerfile for {app.name} (Python, {kind}), written by `tower generate dockerfile`.

FROM {PYTHON_IMAGE} AS build
WORKDIR /app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_NO_CACHE_DIR=1 \\
    VIRTUAL_ENV=/opt/venv \\
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
{deps}

FROM {PYTHON_IMAGE} AS runner
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \\
 && apt-get install -y --no-install-recommends {_TINI} \\
 && rm -rf /var/lib/apt/lists/* \\
 && groupadd --system --gid 10001 app \\
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
ENV VIRTUAL_ENV=/opt/venv \\
    PATH=/opt/venv/bin:$PATH \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PORT={app.port}
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=10001:10001 /app /app
USER 10001:10001
EXPOSE {app.port}
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \\
  CMD {_python_probe(app.port, spec.health.liveness)}
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD {cmd}
"""


def _move_out(spec: Spec, app: App, existing: str) -> tuple[list[str], list[str], set[int]]:
    """Notes on each secret the existing Dockerfile bakes in, with where it goes instead; the
    names to redact in diffs; the lines of ENV/ARG instructions that only hold secrets."""
    found = baked_secrets(parse(existing), tuple(spec.env.client_prefixes))
    notes: list[str] = []
    names: list[str] = []
    for secret in found:
        where = f"{spec.service.dockerfile} line {secret.line}"
        if secret.name:
            names.append(secret.name)
            how = (
                f"fly secrets set {secret.name}=<value> -a {app.fly_app}"
                if app.target is Target.FLY
                else f"set {secret.name} in the platform's secrets"
            )
            notes.append(
                f"docker.secrets: {secret.keyword} {secret.name} ({where}) is moved out of the "
                f"image, its value copied nowhere: {how}, declare it in tower.toml as "
                f"[env.vars.{secret.name}] secret = true, and rotate it (it shipped in images)"
            )
        else:
            notes.append(
                f"docker.secrets: {secret.keyword} ({where}) holds {secret.kind}: not copied; pass "
                "it with RUN --mount=type=secret and rotate it"
            )
    return notes, names, {s.line for s in found if s.name}


def _without_secrets(spec: Spec, app: App, existing: str) -> Reconciled:
    """The user's Dockerfile kept, less each ENV/ARG assignment of a secret (docker.secrets
    requires it); every other line byte-identical."""
    notes, names, lines = _move_out(spec, app, existing)
    if not lines:
        return Reconciled(existing, notes, names)
    prefixes = tuple(spec.env.client_prefixes)
    out: list[str] = []
    source = existing.splitlines(keepends=True)
    index = 0
    while index < len(source):
        end = index
        while source[end].rstrip("\n").endswith("\\") and end + 1 < len(source):
            end += 1
        if index + 1 not in lines:
            out.extend(source[index : end + 1])
            index = end + 1
            continue
        instruction = parse("".join(source[index : end + 1]))[0]
        kept = [
            (key, value)
            for key, value in _assignments(instruction.keyword, instruction.args)
            if not credential_in(value)
            and not (sensitive(key, prefixes) and (value or instruction.keyword == "ARG"))
        ]
        if kept:
            out.append(
                f"{instruction.keyword} "
                + " ".join(f"{k}={shlex.quote(v)}" if v else k for k, v in kept)
                + "\n"
            )
        index = end + 1
    return Reconciled("".join(out), notes, names)


def dockerfile(spec: Spec, app: App, root: Path) -> GeneratedFile:
    def fresh(text: str) -> Callable[[str], Reconciled]:
        def reconcile(existing: str) -> Reconciled:
            notes, names, _ = _move_out(spec, app, existing)
            return Reconciled(text, notes, names)

        return reconcile

    def keep(existing: str) -> Reconciled:
        return _without_secrets(spec, app, existing)

    notes: tuple[str, ...] = ()
    if app.is_node:
        text = nextjs_dockerfile(spec, app)
        if app.stack is Stack.NODE:
            notes = ("stack is node: the Dockerfile assumes Next.js",)
    else:
        text = python_dockerfile(spec, app, root)
        server = _server_package(app)
        if server:
            notes = (
                f"{server.split('=')[0]} is not among the app's dependencies: the image installs {server}",
            )
    return GeneratedFile(
        spec.service.dockerfile,
        text,
        notes=notes,
        generator="dockerfile",
        reconcile=fresh(text),
        keep=keep,
    )


_IGNORED = {
    "common": [
        ".git", ".github", ".env", ".env.*", "!.env.example", ".tower", "*.log",
        ".DS_Store", "coverage",
    ],
    "python": [
        "__pycache__", "*.py[cod]", ".venv", "venv", ".pytest_cache", ".mypy_cache",
        ".ruff_cache", "db.sqlite3",
    ],
    "node": ["node_modules", ".next", "out", ".vercel", "npm-debug.log*", "yarn-error.log*"],
}  # fmt: skip


def dockerignore(spec: Spec, app: App) -> GeneratedFile:
    """``.dockerignore``: secrets (.env), tower's state, git and local build output stay out of the
    image. Merged line by line with an existing one: the user's lines stay, missing ones are added."""
    lines = [
        "# Keeps secrets, tower's state and local build output out of the image",
        "# (written by `tower generate dockerignore`; your own lines are kept).",
        *_IGNORED["common"],
        *(_IGNORED["node"] if app.is_node else _IGNORED["python"]),
    ]
    return GeneratedFile(".dockerignore", "\n".join(lines) + "\n", merge_lines=True)


def fix_snippets(spec: Spec, root: Path) -> dict[str, str]:
    """Dockerfile fix snippets for this app's stack, for the checks' fixes: ``cmd`` (the CMD
    the generator writes) and ``stages`` (a build stage and a slim runtime stage)."""
    app = app_facts(spec, root)
    if app.is_node:
        cmd = (
            'CMD ["node", "server.js"]'
            if app.standalone
            else f'CMD ["node_modules/.bin/next", "start", "--port", "{app.port}"]'
        )
        stages = (
            f"FROM {NODE_IMAGE} AS build\nWORKDIR /app\nCOPY . .\nRUN npm ci && npm run build\n\n"
            f"FROM {NODE_IMAGE}\nWORKDIR /app\nCOPY --from=build /app/.next/standalone ./"
        )
        return {"cmd": cmd, "stages": stages}
    return {
        "cmd": "CMD " + json.dumps(python_command(spec, app)),
        "stages": (
            f"FROM {PYTHON_IMAGE} AS build\nRUN python -m venv /opt/venv\nENV PATH=/opt/venv/bin:$PATH\n"
            "COPY requirements.txt ./\nRUN pip install --no-cache-dir -r requirements.txt\n\n"
            f"FROM {PYTHON_IMAGE}\nCOPY --from=build /opt/venv /opt/venv\nCOPY . /app"
        ),
    }
