"""Dockerfiles for Next.js (standalone output) and Python ASGI apps.

Both are multi-stage, start from a pinned base image, run as a non-root user
under tini, declare a HEALTHCHECK on the liveness path, use the JSON form of
CMD, and hold no secret in ENV or ARG. The Node heap is sized to three
quarters of the VM's memory. They pass hadolint with no warnings.
"""

from __future__ import annotations

from pathlib import Path

from controltower.generate.common import NODE_IMAGE, PYTHON_IMAGE, App
from controltower.generate.files import GeneratedFile
from controltower.spec import Spec
from controltower.spec.service import Stack

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


def nextjs_dockerfile(spec: Spec, app: App) -> str:
    copy, install = _NODE_INSTALL[app.package_manager]
    build = _NODE_BUILD[app.package_manager]
    return f"""# syntax=docker/dockerfile:1
# Dockerfile for {app.name} (Next.js, standalone output), written by `tower generate dockerfile`.
# next.config must set output: "standalone". UID 1000 is the image's non-root "node" user.

FROM {NODE_IMAGE} AS base
WORKDIR /app
ENV NEXT_TELEMETRY_DISABLED=1

FROM base AS deps
COPY {copy}
RUN {install}

FROM base AS build
COPY --from=deps /app/node_modules ./node_modules
COPY . .
RUN {build}

FROM base AS runner
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \\
 && apt-get install -y --no-install-recommends {_TINI} \\
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \\
    PORT={app.port} \\
    HOSTNAME=0.0.0.0 \\
    NODE_OPTIONS=--max-old-space-size={app.heap_mb}
COPY --from=build --chown=1000:1000 /app/public ./public
COPY --from=build --chown=1000:1000 /app/.next/standalone ./
COPY --from=build --chown=1000:1000 /app/.next/static ./.next/static
USER 1000:1000
EXPOSE {app.port}
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \\
  CMD {_node_probe(app.port, spec.health.liveness)}
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "server.js"]
"""


def python_dockerfile(spec: Spec, app: App, root: Path) -> str:
    if (root / "requirements.txt").exists():
        deps = (
            "COPY requirements.txt ./\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . ."
        )
    else:
        deps = "COPY . .\nRUN pip install --no-cache-dir ."
    return f"""# syntax=docker/dockerfile:1
# Dockerfile for {app.name} (Python ASGI), written by `tower generate dockerfile`.

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
CMD ["uvicorn", "{app.python_entry}", "--host", "0.0.0.0", "--port", "{app.port}", "--proxy-headers", "--forwarded-allow-ips", "*", "--timeout-graceful-shutdown", "{max(5, int(spec.deploy.drain_timeout))}"]
"""


def dockerfile(spec: Spec, app: App, root: Path) -> GeneratedFile:
    if app.is_node:
        text = nextjs_dockerfile(spec, app)
        notes: tuple[str, ...] = ()
        if app.stack is Stack.NODE:
            notes = ("stack is node: the Dockerfile assumes Next.js standalone output",)
        return GeneratedFile(spec.service.dockerfile, text, notes=notes)
    notes = ()
    if app.stack is not Stack.PYTHON_ASGI:
        notes = (f"stack is {app.stack.value}: wrote the Python ASGI Dockerfile (uvicorn)",)
    return GeneratedFile(spec.service.dockerfile, python_dockerfile(spec, app, root), notes=notes)
