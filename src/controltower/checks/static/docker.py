"""tower's own Dockerfile checks: what hadolint does not judge, each under a tower id.

hadolint itself runs as ``docker.hadolint`` (see hadolint.py) and reports its
findings with its own codes; the checks here never carry a DL code. They judge
readiness on the target: the final stage's user, command and heap, the base
image's release line, credentials in values, remote code, dev servers, and the
platform (Fly's init, Fly's health checks).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from typing import ClassVar

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Location,
    Outcome,
    Severity,
    Status,
    failed,
    passed,
    skipped,
    warned,
)
from controltower.checks.static import baseimages
from controltower.checks.static.dockerfile import (
    Base,
    Instruction,
    bases,
    final_stage,
    parse,
)
from controltower.checks.static.files import line_of, read_text
from controltower.checks.static.flyconfig import normalize, vm_memory_mb
from controltower.spec.service import Stack, Target

__all__ = ["SECRET_VALUES", "Instruction", "parse", "sensitive"]

CONTAINERS = frozenset({Target.DOCKER, Target.KUBERNETES, Target.FLY})
NODE = (Stack.NODE, Stack.NEXTJS)
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE
)
SECRET_VALUES = ("sk_live_", "sk_test_", "rk_live_", "whsec_", "ghp_", "github_pat_", "AKIA")
KEY_IN_TEXT = re.compile(
    r"\b(sk_live_|sk_test_|rk_live_|whsec_|ghp_|github_pat_|glpat-|xox[bp]-|AKIA)[A-Za-z0-9_\-]{8,}"
)
CREDENTIALS_IN_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:[^/\s@\"']+@", re.IGNORECASE)
TOKEN_IN_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']{16,}@", re.IGNORECASE)
HEAP_FLAG = re.compile(r"--max[-_]old[-_]space[-_]size[= ](\d+)")
SUSPICIOUS = ("api_key", "client_key", "password", "private", "secret", "token")


class DockerCheck(Check):
    targets: ClassVar[frozenset[Target]] = CONTAINERS

    async def run(self, ctx: CheckContext) -> Outcome:
        name = ctx.spec.service.dockerfile
        text = read_text(ctx.path(name))
        if text is None:
            return skipped(f"no {name}")
        return self.judge(ctx, name, parse(text))

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        raise NotImplementedError

    @staticmethod
    def final(instructions: list[Instruction]) -> list[Instruction]:
        return final_stage(instructions)


def runtime(instructions: list[Instruction]) -> list[Instruction]:
    """The final stage and the stages it is built FROM (``FROM base AS runner`` follows ``base``)."""
    found = bases(instructions)
    by_alias = {b.alias: b for b in found if b.alias}
    chain: list[int] = []
    current: Base | None = found[-1] if found else None
    while current is not None and current.stage not in chain:
        chain.append(current.stage)
        current = by_alias.get(current.written.lower()) if current.from_stage else None
    return [i for i in instructions if i.stage in chain]


def real_base(instructions: list[Instruction]) -> Base | None:
    """The image the final stage stands on, through stage aliases."""
    found = bases(instructions)
    by_alias = {b.alias: b for b in found if b.alias}
    current = found[-1] if found else None
    seen: set[int] = set()
    while current is not None and current.from_stage and current.stage not in seen:
        seen.add(current.stage)
        current = by_alias.get(current.written.lower())
    return current


def commands(instructions: list[Instruction]) -> list[Instruction]:
    """The final stage's CMD and ENTRYPOINT."""
    return [i for i in final_stage(instructions) if i.keyword in ("CMD", "ENTRYPOINT")]


def command_text(instruction: Instruction) -> str:
    """A CMD or ENTRYPOINT as one shell line, from either form."""
    with contextlib.suppress(json.JSONDecodeError):
        words = json.loads(instruction.args)
        if isinstance(words, list):
            return " ".join(str(w) for w in words)
    return instruction.args


def run_lines(instructions: list[Instruction]) -> list[Instruction]:
    return [i for i in instructions if i.keyword == "RUN"]


@register
class Present(Check):
    """The Dockerfile named by [service] dockerfile exists, so the image can be built at all."""

    id = "docker.present"
    title = "A Dockerfile builds the image"
    category = Category.DELIVERY
    gate = Gate.CORE
    severity = Severity.HIGH
    targets = CONTAINERS
    advice_on = frozenset({Target.FLY})
    advice_reason = (
        "Fly can also deploy a prebuilt image or use a builder named in fly.toml [build]"
    )
    remedy = "Write one with `tower generate dockerfile --write`, or set [service] dockerfile to its path."

    async def run(self, ctx: CheckContext) -> Outcome:
        name = ctx.spec.service.dockerfile
        if read_text(ctx.path(name)) is not None:
            return passed(f"{name} present")
        return failed(
            f"no {name}: nothing builds the image, and the other Dockerfile checks cannot run",
            Fix(
                "Generate a production Dockerfile from tower.toml",
                name,
                "tower generate dockerfile --write",
            ),
        )


@register
class MultiStage(DockerCheck):
    """The Dockerfile has at least two FROM stages, so build tools stay out of the runtime
    image."""

    id = "docker.multistage"
    title = "The image is built in stages"
    category = Category.PERFORMANCE
    gate = Gate.DEPLOY
    severity = Severity.LOW
    remedy = "Build in one stage and copy only the output into a slim runtime stage."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        stages = sum(1 for i in instructions if i.keyword == "FROM")
        if stages < 2:
            return failed(
                "one stage: build tools and sources ship in the final image",
                Fix(
                    "Build in one stage, copy only the output into a slim runtime stage",
                    name,
                    stack_snippet(ctx, "stages"),
                ),
            )
        return passed(f"{stages} stages")


@register
class NonRootUser(DockerCheck):
    """The image runs as a user other than root: the final stage (or the stage it is built
    from) switches USER, and the last USER is not root or 0."""

    id = "docker.user"
    title = "The final stage runs as a non-root USER"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Add USER node (Node images) or create an unprivileged user and switch to it."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        users = [i for i in runtime(instructions) if i.keyword == "USER"]
        fix = Fix(
            "Run as an unprivileged user",
            name,
            "USER node"
            if ctx.spec.service.stack in NODE
            else "RUN useradd --create-home app\nUSER app",
        )
        if not users:
            return failed("no USER in the final stage: the app runs as root", fix)
        user = users[-1].args.split(":", 1)[0].strip()
        if user in ("root", "0"):
            return failed(
                f"the last USER is {user}: the app runs as root",
                fix,
                location=Location(name, users[-1].line),
            )
        return passed(f"USER {user}")


@register
class PinnedBase(DockerCheck):
    """Every FROM names a tag that stays on one release line (not latest, lts, alpine, slim,
    python:3...) or a digest; ARG defaults used in FROM are resolved first. Stage names and
    scratch are fine."""

    id = "docker.base_pinned"
    title = "Base images stay on one release line"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Pin the base image to a release line (node:22-slim, python:3.12-slim) or a digest."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        bad: list[str] = []
        first = 0
        for base in bases(instructions):
            if base.image is None or base.from_stage or base.image == "scratch" or base.digest:
                continue
            why = baseimages.floating(base.name, base.tag)
            if why:
                shown = (
                    base.image if base.image == base.written else f"{base.written} ({base.image})"
                )
                bad.append(f"line {base.line}: {shown}: {why}")
                first = first or base.line
        if bad:
            image = "node:22-slim" if ctx.spec.service.stack in NODE else "python:3.12-slim"
            return failed(
                f"floating base image{'s' if len(bad) > 1 else ''}: {'; '.join(bad)}",
                Fix("Pin the base image to a release line (or a digest)", name, f"FROM {image}"),
                location=Location(name, first),
                details=bad,
            )
        return passed("every base image stays on one release line")


@register
class SupportedBase(DockerCheck):
    """No base image stands on a release past its end of life (Node.js, Python, Debian,
    Ubuntu, Alpine; a dated table from endoflife.date); one ending within 90 days warns."""

    id = "docker.base_eol"
    title = "Base images are on supported releases"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Move the base to a supported release line (node:22-slim, python:3.12-slim, bookworm)."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        today = ctx.clock.now().date()
        ended: list[str] = []
        ending: list[str] = []
        first = 0
        seen: set[str] = set()
        for base in bases(instructions):
            if base.image is None or base.from_stage or base.image in seen:
                continue
            seen.add(base.image)
            for release in baseimages.releases(base.name, base.tag):
                if release.ends < today:
                    ended.append(
                        f"line {base.line}: {base.image}: {release.what} reached end of life on {release.ends.isoformat()}"
                    )
                    first = first or base.line
                elif (release.ends - today).days <= 90:
                    ending.append(
                        f"line {base.line}: {base.image}: {release.what} reaches end of life on {release.ends.isoformat()}"
                    )
        note = f"(end-of-life table as of {baseimages.AS_OF.isoformat()})"
        fix = Fix(
            self.remedy,
            name,
            "FROM node:22-slim" if ctx.spec.service.stack in NODE else "FROM python:3.12-slim",
        )
        if ended:
            return failed(
                "; ".join(d.split(": ", 1)[1] for d in ended) + f" {note}",
                fix,
                location=Location(name, first),
                details=ended + ending,
            )
        if ending:
            return warned("; ".join(d.split(": ", 1)[1] for d in ending), fix, details=ending)
        return passed(f"every known base release is supported {note}")


@register
class InitProcess(DockerCheck):
    """The final stage runs tini or dumb-init in its ENTRYPOINT, CMD or RUN lines."""

    id = "docker.init"
    title = "An init process (tini or dumb-init) reaps zombies and forwards signals"
    category = Category.RELIABILITY
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    advice_on = frozenset({Target.FLY})
    advice_reason = "Fly Machines run Fly's own init as PID 1"
    remedy = 'Install tini and use ENTRYPOINT ["/usr/bin/tini", "--"]; on Fly, Fly\'s init is PID 1 already.'

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        text = " ".join(
            i.args for i in runtime(instructions) if i.keyword in ("ENTRYPOINT", "CMD", "RUN")
        )
        if re.search(r"\btini\b|dumb-init", text) or "--init" in text:
            return passed("init process in the image")
        return failed(
            "no tini or dumb-init: PID 1 ignores SIGTERM and leaves zombies",
            Fix(
                "Add tini as the entrypoint",
                name,
                'RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*\nENTRYPOINT ["/usr/bin/tini", "--"]',
            ),
        )


HEALTH_PLATFORMS = frozenset({Target.FLY, Target.KUBERNETES})
HEALTH_REASON = "the platform ignores HEALTHCHECK; checks live in fly.toml or the pod's probes"


@register
class HealthCheck(DockerCheck):
    """The final stage declares a HEALTHCHECK (not HEALTHCHECK NONE)."""

    id = "docker.healthcheck"
    title = "The image declares a HEALTHCHECK"
    category = Category.HEALTH
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    advice_on = HEALTH_PLATFORMS
    advice_reason = HEALTH_REASON
    remedy = "Add a HEALTHCHECK that requests the liveness path; on Fly and Kubernetes the platform's own checks do this job."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        if any(
            i.keyword == "HEALTHCHECK" and i.args.upper() != "NONE" for i in runtime(instructions)
        ):
            return passed("HEALTHCHECK present")
        port, path = ctx.spec.service.port, ctx.spec.health.liveness
        return failed(
            "no HEALTHCHECK",
            Fix(
                "Declare one",
                name,
                f'HEALTHCHECK --interval=15s --timeout=3s --start-period=10s CMD ["wget", "-qO-", "http://127.0.0.1:{port}{path}"]',
            ),
            location=Location(name, self.final(instructions)[0].line) if instructions else None,
        )


@register
class HealthCheckTool(DockerCheck):
    """The program a HEALTHCHECK runs (curl, wget) is in the image: the base image has it
    (full Debian images have both, Alpine's busybox has wget, slim and distroless have
    neither) or the final stage installs it."""

    id = "docker.healthcheck_tool"
    title = "The HEALTHCHECK's program exists in the image"
    category = Category.HEALTH
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    advice_on = HEALTH_PLATFORMS
    advice_reason = HEALTH_REASON
    remedy = "Install the tool in the final stage, or check with the runtime itself (node -e 'fetch(...)')."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        stage = runtime(instructions)
        checks = [i for i in stage if i.keyword == "HEALTHCHECK" and i.args.upper() != "NONE"]
        if not checks:
            return skipped("no HEALTHCHECK")
        check = checks[-1]
        text = command_text(Instruction("CMD", re.sub(r"^(--\S+\s+)*CMD\s+", "", check.args), 0, 0))
        used = [tool for tool in ("curl", "wget") if re.search(rf"(^|[\s/\"']){tool}\b", text)]
        if not used:
            return passed("the HEALTHCHECK runs no download tool")
        base = real_base(instructions)
        present = baseimages.http_tools(base.name, base.tag) if base and base.image else None
        installed = " ".join(i.args for i in stage if i.keyword in ("RUN", "COPY", "ADD"))
        missing = [
            tool
            for tool in used
            if not re.search(rf"\b{tool}\b", installed)
            and present is not None
            and tool not in present
        ]
        if present is None and not missing:
            return passed(f"{', '.join(used)}: the base image is not in tower's table; not judged")
        if missing:
            fix_line = (
                f'HEALTHCHECK CMD ["node", "-e", "fetch(\'http://127.0.0.1:{ctx.spec.service.port}{ctx.spec.health.liveness}\').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]'
                if ctx.spec.service.stack in NODE
                else f"RUN apt-get update && apt-get install -y --no-install-recommends {missing[0]} && rm -rf /var/lib/apt/lists/*"
            )
            image = base.image if base else "the base image"
            return failed(
                f"the HEALTHCHECK runs {', '.join(missing)}, which {image} does not have and the final stage does not install: the container will never be healthy",
                Fix("Use a tool the image has, or install it", name, fix_line),
                location=Location(name, check.line),
            )
        return passed(f"{', '.join(used)} is in the image")


def client_prefixes(ctx: CheckContext) -> tuple[str, ...]:
    return tuple(ctx.spec.env.client_prefixes)


def stack_snippet(ctx: CheckContext, kind: str) -> str:
    """The generator's snippet for the app's stack (a Python app gets Python, not Node.js):
    ``cmd`` or ``stages``, as ``tower generate dockerfile`` writes them."""
    from controltower.generate.dockerfile import fix_snippets

    try:
        return fix_snippets(ctx.spec, ctx.root)[kind]
    except Exception:  # the fix is a convenience; the finding stands without it
        return ""


def sensitive(name: str, prefixes: tuple[str, ...] = ()) -> bool:
    """Whether a variable's name says it holds a credential; client-prefixed names are public."""
    if prefixes and name.startswith(prefixes):
        return False
    return any(s in name.lower() for s in SUSPICIOUS) or bool(SECRET_NAME.search(name))


def credential_in(value: str) -> str:
    """What kind of credential a value carries ("" when none): never the value itself."""
    text = value.strip("\"'")
    if CREDENTIALS_IN_URL.search(text):
        return "a URL with a password"
    if TOKEN_IN_URL.search(text):
        return "a URL with a token"
    match = KEY_IN_TEXT.search(text)
    if match:
        return f"a {match.group(1)}… key"
    return ""


@dataclass(frozen=True)
class BakedSecret:
    """A credential an instruction bakes into the image: ``name`` is the ENV/ARG name ("" for
    a RUN, ADD or COPY), ``kind`` what the value looks like ("" when only the name says it)."""

    line: int
    keyword: str
    name: str = ""
    kind: str = ""

    def __str__(self) -> str:
        what = f"{self.keyword} {self.name}".strip()
        return f"line {self.line}: {what}" + (f" holds {self.kind}" if self.kind else "")


def baked_secrets(
    instructions: list[Instruction], prefixes: tuple[str, ...] = ()
) -> list[BakedSecret]:
    """Every ENV or ARG with a credential's name and a value (or as a build argument), and
    every ENV, ARG, RUN, ADD or COPY holding a credential in a value; never the value."""
    bad: list[BakedSecret] = []
    for i in instructions:
        keyword, args = i.keyword, i.args
        if keyword == "ONBUILD":
            keyword, _, args = args.partition(" ")
            keyword = keyword.upper()
        if keyword in ("ENV", "ARG"):
            for key, value in _assignments(keyword, args):
                kind = credential_in(value)
                if kind or (sensitive(key, prefixes) and (value or keyword == "ARG")):
                    bad.append(BakedSecret(i.line, keyword, key, kind))
        elif keyword in ("RUN", "ADD", "COPY"):
            kind = credential_in(args)
            if kind:
                bad.append(BakedSecret(i.line, keyword, "", kind))
    return bad


@register
class NoSecrets(DockerCheck):
    """No ENV or ARG (ONBUILD included) has a credential's name with a value or as a build
    argument, and no ENV, ARG or RUN holds a credential in a value: a URL with a password or
    token (postgres://u:pw@..., https://token@...), a key-shaped string (sk_live_, whsec_,
    ghp_, AKIA...). Client-prefixed names (NEXT_PUBLIC_) are public by design."""

    id = "docker.secrets"
    title = "No secrets in ENV, ARG or RUN"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.CRITICAL
    remedy = "Pass secrets at run time (fly secrets set) or with RUN --mount=type=secret; rotate any that shipped in an image."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        bad = [str(found) for found in baked_secrets(instructions, client_prefixes(ctx))]
        if bad:
            return failed(
                "secrets baked into the image: " + "; ".join(d.split(": ", 1)[1] for d in bad),
                Fix(
                    "Pass secrets at run time (fly secrets set / --secret mounts), never in ENV, ARG or RUN",
                    name,
                    "RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci",
                ),
                location=Location(name, int(bad[0].split()[1].rstrip(":"))),
                details=bad,
            )
        return passed("no credential in ENV, ARG or RUN")


def _assignments(keyword: str, args: str) -> list[tuple[str, str]]:
    """(name, value) pairs of an ENV or ARG; the legacy ``ENV NAME value`` form too."""
    if keyword == "ENV" and "=" not in args.split(" ", 1)[0]:
        key, _, value = args.partition(" ")
        return [(key, value)]
    return [
        (key, value.lstrip("="))
        for key, value, _ in re.findall(
            r"([A-Za-z_][A-Za-z0-9_.-]*)(=(\"[^\"]*\"|'[^']*'|\S+))?", args
        )
    ]


@register
class Command(DockerCheck):
    """The final stage (or the stage it is built from) declares a CMD or ENTRYPOINT, so the
    image starts the app by itself."""

    id = "docker.cmd"
    title = "The image declares the command that starts the app"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    remedy = 'Declare the command in the exec form: CMD ["node", "server.js"].'

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        found = [i for i in runtime(instructions) if i.keyword in ("CMD", "ENTRYPOINT")]
        if not found:
            return failed(
                "no CMD or ENTRYPOINT in the final stage: the image starts nothing",
                Fix("Declare the command", name, stack_snippet(ctx, "cmd")),
            )
        return passed(f"{found[-1].keyword} {command_text(found[-1])}")


REMOTE_PIPE = re.compile(
    r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(-E\s+)?(ba|z|da|k)?sh\b|"
    r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(python3?|node|perl|ruby)\b|"
    r"\b(ba|z)?sh\s+(-c\s+)?[\"']?\$\(\s*(curl|wget)\b|"
    r"\b(ba|z)?sh\s+<\(\s*(curl|wget)\b"
)


@register
class RemoteCode(DockerCheck):
    """No build step runs code fetched without a checksum: no ``curl ... | sh`` (or bash,
    python, node), no ``sh -c "$(curl ...)"``, no ``ADD <url>`` without --checksum."""

    id = "docker.remote_code"
    title = "No remote code runs without a checksum"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Download to a file, verify its sha256 (sha256sum -c), then run it; or ADD --checksum=sha256:..."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        bad = []
        for i in instructions:
            if i.keyword == "RUN" and REMOTE_PIPE.search(i.args):
                bad.append(f"line {i.line}: RUN pipes a download into an interpreter")
            if i.keyword == "ADD" and "--checksum" not in i.args:
                sources = [w for w in i.args.split() if not w.startswith("--")][:-1]
                if any(re.match(r"https?://", s) for s in sources):
                    bad.append(f"line {i.line}: ADD of a URL without --checksum")
        if bad:
            return failed(
                "; ".join(d.split(": ", 1)[1] for d in bad),
                Fix(
                    "Verify what you download before running it",
                    name,
                    "ADD --checksum=sha256:<sha256 of the file> https://example.com/tool.tar.gz /tmp/\n"
                    "RUN curl -fsSLo /tmp/install.sh https://example.com/install.sh \\\n"
                    ' && echo "<sha256>  /tmp/install.sh" | sha256sum -c - && sh /tmp/install.sh',
                ),
                location=Location(name, int(bad[0].split()[1].rstrip(":"))),
                details=bad,
            )
        return passed("no remote code without a checksum")


NPM_INSTALL = re.compile(r"\bnpm\s+(install|i)\b([^;&|]*)")
YARN_INSTALL = re.compile(r"\byarn(\s+install)?\s*(?=$|&&|;|\||\s--)([^;&|]*)")
PNPM_INSTALL = re.compile(r"\bpnpm\s+(install|i)\b([^;&|]*)")


@register
class LockedInstall(DockerCheck):
    """Node dependencies install from the lockfile: ``npm ci`` rather than ``npm install``,
    ``yarn install --frozen-lockfile`` / ``--immutable``, ``pnpm install --frozen-lockfile``
    (installing named packages, as in ``npm install -g pm2``, is fine)."""

    id = "docker.npm_ci"
    title = "Node dependencies install exactly from the lockfile"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    remedy = "Use npm ci (or yarn install --frozen-lockfile, pnpm install --frozen-lockfile)."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        bad = []
        for i in run_lines(instructions):
            for match in NPM_INSTALL.finditer(i.args):
                if not _package_args(match.group(2)):
                    bad.append(f"line {i.line}: npm {match.group(1)} (use npm ci)")
            for match in PNPM_INSTALL.finditer(i.args):
                if "--frozen-lockfile" not in match.group(2) and not _package_args(match.group(2)):
                    bad.append(f"line {i.line}: pnpm install without --frozen-lockfile")
            for match in YARN_INSTALL.finditer(i.args):
                rest = match.group(2)
                if not re.search(r"--frozen-lockfile|--immutable", rest):
                    bad.append(
                        f"line {i.line}: yarn install without --frozen-lockfile or --immutable"
                    )
        if bad:
            return failed(
                "; ".join(d.split(": ", 1)[1] for d in bad),
                Fix(
                    "Install exactly what the lockfile says",
                    name,
                    "COPY package.json package-lock.json ./\nRUN npm ci",
                ),
                location=Location(name, int(bad[0].split()[1].rstrip(":"))),
                details=bad,
            )
        return passed("installs follow the lockfile")


def _package_args(rest: str) -> list[str]:
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    return [w for w in words if not w.startswith("-")]


DEV_SERVER = re.compile(
    r"\bnext\s+dev\b|\b(npm|pnpm|bun)\s+(run\s+)?dev\b|\byarn\s+(run\s+)?dev\b|\bnodemon\b|"
    r"\bts-node-dev\b|\bwebpack(-dev-server|\s+serve)\b|\bng\s+serve\b|\bvite(\s+dev)?\s*$|"
    r"\bflask\s+run\b|\bmanage\.py\s+runserver\b|\b(uvicorn|hypercorn)\b.*--reload\b|"
    r"\bfastapi\s+dev\b|\bnpx\s+vite\b(?!\s+(build|preview))"
)


@register
class DevServer(DockerCheck):
    """The image does not start a development server (next dev, npm run dev, nodemon, vite,
    flask run, manage.py runserver, uvicorn --reload, fastapi dev)."""

    id = "docker.dev_server"
    title = "The image starts a production server, not a dev server"
    category = Category.PERFORMANCE
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Start the production server: next start or node server.js, gunicorn/uvicorn without --reload."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        for i in [c for c in runtime(instructions) if c.keyword in ("CMD", "ENTRYPOINT")]:
            text = command_text(i)
            if DEV_SERVER.search(text):
                fix = (
                    'CMD ["node", "server.js"]'
                    if ctx.spec.service.stack in NODE
                    else f'CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "{ctx.spec.service.port}"]'
                )
                return failed(
                    f"{i.keyword} runs a development server ({text}): slow, verbose errors, file watching",
                    Fix("Start the production server", name, fix),
                    location=Location(name, i.line),
                )
        return passed("no development server")


LOCAL_BIND = re.compile(
    r"(--host|--hostname|--bind|--listen|-H|-b|--address)(=|\s+)[\"']?(127\.0\.0\.1|localhost|::1)\b|"
    r"\brunserver\s+(127\.0\.0\.1|localhost)\b|"
    r"\b(HOSTNAME|HOST|BIND|LISTEN_ADDR|ADDRESS)\s*=\s*[\"']?(127\.0\.0\.1|localhost|::1)\b"
)


@register
class LocalhostBind(DockerCheck):
    """The app does not listen on localhost only (--host 127.0.0.1, -b localhost,
    ENV HOSTNAME=localhost for Next.js standalone): the platform's proxy reaches the
    machine's network interface, not its loopback."""

    id = "docker.localhost_bind"
    title = "The app listens on every interface, not localhost only"
    category = Category.RELIABILITY
    gate = Gate.CORE
    severity = Severity.HIGH
    remedy = "Bind 0.0.0.0 (ENV HOSTNAME=0.0.0.0 for Next.js standalone, --host 0.0.0.0 elsewhere)."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        for i in runtime(instructions):
            if i.keyword not in ("CMD", "ENTRYPOINT", "ENV"):
                continue
            text = command_text(i) if i.keyword != "ENV" else _env_text(i.args)
            if LOCAL_BIND.search(text):
                return failed(
                    f"line {i.line}: {i.keyword} binds localhost: the platform's proxy cannot reach the app",
                    Fix(
                        "Listen on every interface",
                        name,
                        "ENV HOSTNAME=0.0.0.0"
                        if ctx.spec.service.stack in NODE
                        else "--host 0.0.0.0",
                    ),
                    location=Location(name, i.line),
                )
        return passed("no localhost-only bind")


def _env_text(args: str) -> str:
    """An ENV line as NAME=value pairs, the legacy ``ENV NAME value`` form too."""
    return " ".join(f"{key}={value}" for key, value in _assignments("ENV", args))


MIGRATION = re.compile(
    r"\bprisma\s+(migrate\s+deploy|db\s+push)\b|\balembic\s+upgrade\b|\bmanage\.py\s+migrate\b|"
    r"\bknex\s+migrate\b|\bsequelize(-cli)?\s+db:migrate\b|\brails\s+db:migrate\b|"
    r"\bdrizzle-kit\s+(migrate|push)\b|\bflask\s+db\s+upgrade\b|\btypeorm\s+migration:run\b|"
    r"\b(npm|pnpm|yarn)\s+(run\s+)?(db:)?migrate\b"
)


@register
class MigrationsAtStart(DockerCheck):
    """The image's command does not run database migrations at start-up: every machine
    would migrate at once, and a failed migration crash-loops the app. Fly's
    release_command (or a pre-deploy job) runs them once, before traffic moves."""

    id = "docker.migrations"
    title = "Migrations run once per release, not at every start"
    category = Category.RELIABILITY
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    remedy = "Run the migration as fly.toml [deploy] release_command (or a pre-deploy job), and start only the server."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        for i in [c for c in runtime(instructions) if c.keyword in ("CMD", "ENTRYPOINT")]:
            text = command_text(i)
            match = MIGRATION.search(text)
            if match:
                fix = (
                    f'[deploy]\n  release_command = "{match.group(0)}"'
                    if ctx.target is Target.FLY
                    else 'CMD ["node", "server.js"]   # and run the migration as a pre-deploy job'
                )
                return failed(
                    f"{i.keyword} runs a migration ({match.group(0)}) at every start",
                    Fix(
                        self.remedy,
                        ctx.spec.service.fly_toml if ctx.target is Target.FLY else name,
                        fix,
                    ),
                    location=Location(name, i.line),
                )
        return passed("no migration at start-up")


@register
class PasswordlessSudo(DockerCheck):
    """No build step grants passwordless sudo (NOPASSWD in sudoers): it turns any code
    execution in the app into root."""

    id = "docker.sudo"
    title = "No passwordless sudo in the image"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = (
        "Do the privileged work at build time as root, then switch USER; never grant NOPASSWD sudo."
    )

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        for i in runtime(instructions):
            if i.keyword in ("RUN", "COPY") and "NOPASSWD" in i.args:
                return failed(
                    f"line {i.line}: {i.keyword} grants passwordless sudo",
                    Fix(self.remedy, name, "USER node"),
                    location=Location(name, i.line),
                )
        return passed("no NOPASSWD sudo")


@register
class NodeEnv(DockerCheck):
    """For Node apps, the final stage sets ENV NODE_ENV=production."""

    id = "docker.node_env"
    title = "NODE_ENV=production in the runtime image"
    category = Category.CONFIG
    gate = Gate.DEPLOY
    severity = Severity.LOW
    remedy = "Add ENV NODE_ENV=production to the runtime stage (Next.js sets it itself)."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        if ctx.spec.service.stack not in NODE:
            return skipped("not a Node app")
        if any(
            i.keyword == "ENV" and re.search(r"NODE_ENV[= ]\"?production", i.args)
            for i in runtime(instructions)
        ):
            return passed("NODE_ENV=production")
        fix = Fix("Set it in the runtime stage", name, "ENV NODE_ENV=production")
        if ctx.spec.service.stack is Stack.NEXTJS:
            return Outcome(
                Status.ADVICE,
                "NODE_ENV not set in the image",
                fix,
                data={
                    "advice_reason": "Next.js (next start, standalone server.js) sets NODE_ENV=production itself"
                },
            )
        return failed("NODE_ENV is not production: dependencies run in development mode", fix)


@register
class NodeHeap(DockerCheck):
    """For Node apps, --max-old-space-size in the image that runs (the final stage, or
    NODE_OPTIONS / processes in fly.toml) is between a quarter and 85% of the VM memory.
    The memory comes from fly.toml's [[vm]] on Fly, else [service] memory when tower.toml
    sets it; with neither the finding is advice."""

    id = "docker.node_heap"
    title = "Node's heap limit fits the VM memory"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    remedy = 'Set ENV NODE_OPTIONS="--max-old-space-size=<75% of the VM memory in MB>".'

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        if ctx.spec.service.stack not in NODE:
            return skipped("not a Node app")
        memory: int | None = None
        if "memory" in ctx.spec.service.model_fields_set:
            memory = ctx.spec.service.memory // (1024 * 1024)
        fly_name = ctx.spec.service.fly_toml
        fly_text = read_text(ctx.path(fly_name)) if ctx.target is Target.FLY else None
        fly: dict[str, object] = {}
        if fly_text:
            with contextlib.suppress(tomllib.TOMLDecodeError):
                fly = normalize(tomllib.loads(fly_text))
                memory = vm_memory_mb(fly)
        found: list[tuple[Location, str]] = [
            (Location(name, i.line), m)
            for i in runtime(instructions)
            if i.keyword in ("ENV", "CMD", "ENTRYPOINT", "ARG")
            for m in HEAP_FLAG.findall(i.args)
        ]
        # fly.toml [env] and [processes] apply at run time, over the image's ENV.
        env = fly.get("env")
        processes = fly.get("processes")
        for key, text in [
            *(
                ("env", str(v))
                for k, v in (env.items() if isinstance(env, dict) else [])
                if k == "NODE_OPTIONS"
            ),
            *(
                ("processes", str(v))
                for v in (processes.values() if isinstance(processes, dict) else [])
            ),
        ]:
            for m in HEAP_FLAG.findall(text):
                found.append((Location(fly_name, line_of(fly_text or "", rf"^\s*\[{key}\]")), m))
        if memory is None:
            unknown = "the VM's memory is not known (no fly.toml [[vm]], no [service] memory)"
            return Outcome(
                Status.ADVICE,
                f"heap {found[-1][1]} MB; {unknown}"
                if found
                else f"no --max-old-space-size; {unknown}",
                Fix(
                    "Say how much memory the VM has, then cap the heap at about 75% of it",
                    "tower.toml",
                    '[service]\nmemory = "1gb"',
                ),
                data={"advice_reason": "the heap can only be judged against a known VM size"},
            )
        heap = int(memory * 0.75)
        fix = Fix(
            f"Cap the heap at about 75% of the VM's {memory} MB",
            name,
            f'ENV NODE_OPTIONS="--max-old-space-size={heap}"',
        )
        if not found:
            return warned(
                f"no --max-old-space-size: Node may grow past the VM's {memory} MB and be OOM-killed",
                fix,
            )
        where, value = found[-1]
        size = int(value)
        if size > memory * 0.85:
            return failed(
                f"--max-old-space-size={size} is above 85% of the VM's {memory} MB",
                fix,
                location=where,
            )
        if size < memory * 0.25:
            return warned(
                f"--max-old-space-size={size} uses under a quarter of the VM's {memory} MB",
                fix,
                location=where,
            )
        return passed(f"heap {size} MB of {memory} MB")
