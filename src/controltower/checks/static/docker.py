"""Dockerfile checks; codes of the overlapping hadolint rules are shown too."""

from __future__ import annotations

import contextlib
import json
import re
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
from controltower.checks.static.files import line_of, read_text
from controltower.checks.static.flyconfig import normalize, vm_memory_mb
from controltower.spec.service import Stack, Target

CONTAINERS = frozenset({Target.DOCKER, Target.KUBERNETES, Target.FLY})
NODE = (Stack.NODE, Stack.NEXTJS)
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE
)
SECRET_VALUES = ("sk_live_", "sk_test_", "rk_live_", "whsec_", "ghp_", "github_pat_", "AKIA")
# hadolint DL3064: names known to hold credentials that the substrings below do not catch.
KNOWN_SENSITIVE = frozenset(
    {
        "APPLICATION_KEY",
        "CI_DEPLOY_USER",
        "DOCKER_EMAIL",
        "FACEBOOK_APP_ID",
        "HEROKU_API_USER",
        "OKTA_AUTHN_GROUPID",
        "OKTA_CLIENT_ORGURL",
        "OKTA_OAUTH2_CLIENTID",
        "STRIPE_DEVICE_NAME",
        "TRAVIS_OS_NAME",
        "TRAVIS_SECURE_ENV_VARS",
        "TRAVIS_SUDO",
    }
)
HEAP_FLAG = re.compile(r"--max[-_]old[-_]space[-_]size[= ](\d+)")
SUSPICIOUS = ("api_key", "client_key", "password", "private", "secret", "token", "username")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int
    stage: int


def parse(text: str) -> list[Instruction]:
    """Instructions with their first line: continuations joined, heredoc bodies kept, comments dropped."""
    out: list[Instruction] = []
    buffer, start, stage = "", 0, -1
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        raw = lines[number]
        number += 1
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        for marker in re.findall(r"<<-?[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?", buffer):
            body = []
            while number < len(lines) and lines[number].strip() != marker:
                body.append(lines[number])
                number += 1
            number += 1
            buffer += "\n" + "\n".join(body)
        keyword, _, args = buffer.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), start, stage))
        buffer = ""
    return out


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """Default values of the ARGs declared before the first FROM (they parameterise FROM lines)."""
    found: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "FROM":
            break
        if i.keyword == "ARG":
            name, _, default = i.args.partition("=")
            found[name.strip()] = default.strip().strip("\"'")
    return found


def expand(text: str, variables: dict[str, str]) -> str | None:
    """``$NAME`` / ``${NAME}`` / ``${NAME:-default}`` substituted; None when one has no value."""
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1) or match.group(2)
        default = match.group(3)
        value = variables.get(name) or default
        if value is None:
            missing = True
            return ""
        return value

    result = re.sub(
        r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\})", one, text
    )
    return None if missing else result


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
        last = max((i.stage for i in instructions), default=0)
        return [i for i in instructions if i.stage == last]


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
    """The final stage ends with a USER that is not root or 0."""

    id = "docker.user"
    title = "The final stage runs as a non-root USER"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    hadolint = "DL3002"
    remedy = "Add USER node (Node images) or create an unprivileged user and switch to it."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        users = [i for i in self.final(instructions) if i.keyword == "USER"]
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
            return failed(f"the last USER is {user}", fix, location=Location(name, users[-1].line))
        return passed(f"USER {user}")


@register
class PinnedBase(DockerCheck):
    """Every FROM names a tag or digest other than latest; ARG defaults used in FROM are
    resolved first. Stage names and scratch are fine."""

    id = "docker.base_pinned"
    title = "Base images are pinned to a version, not latest"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    hadolint = "DL3006,DL3007"
    remedy = "Pin the base image to a version tag (node:22-slim) or a digest."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        stages: set[str] = set()
        variables = global_args(instructions)
        bad, codes = [], []
        first = 0
        for i in instructions:
            if i.keyword != "FROM":
                continue
            words = [w for w in i.args.split() if not w.startswith("--")]
            written = words[0] if words else ""
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            image = expand(written, variables)
            if (
                image is None
                or written.lower() in stages
                or image == "scratch"
                or "@sha256:" in image
            ):
                continue
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                code = "DL3007" if tag else "DL3006"
                shown = image if image == written else f"{written} ({image})"
                bad.append(f"line {i.line}: {shown}: {'latest' if tag else 'no tag'} ({code})")
                codes.append(code)
                first = first or i.line
        if bad:
            base = "node:22-slim" if ctx.spec.service.stack in NODE else "python:3.12-slim"
            return failed(
                f"unpinned base image{'s' if len(bad) > 1 else ''}: {'; '.join(bad)}",
                Fix("Pin the base image to a version (or a digest)", name, f"FROM {base}"),
                location=Location(name, first),
                details=bad,
                hadolint=",".join(sorted(set(codes))),
            )
        return passed("every base image is pinned")


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
            i.args for i in self.final(instructions) if i.keyword in ("ENTRYPOINT", "CMD", "RUN")
        )
        if re.search(r"\btini\b|dumb-init", text):
            return passed("init process in the image")
        return failed(
            "no tini or dumb-init: PID 1 ignores SIGTERM and leaves zombies",
            Fix(
                "Add tini as the entrypoint",
                name,
                'RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*\nENTRYPOINT ["/usr/bin/tini", "--"]',
            ),
        )


@register
class HealthCheck(DockerCheck):
    """The final stage declares a HEALTHCHECK (not HEALTHCHECK NONE)."""

    id = "docker.healthcheck"
    title = "The image declares a HEALTHCHECK"
    category = Category.HEALTH
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    hadolint = "DL3057"
    advice_on = frozenset({Target.FLY, Target.KUBERNETES})
    advice_reason = "the platform ignores HEALTHCHECK; checks live in fly.toml or the pod's probes"
    remedy = "Add a HEALTHCHECK that requests the liveness path; on Fly and Kubernetes the platform's own checks do this job."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        if any(
            i.keyword == "HEALTHCHECK" and i.args.upper() != "NONE"
            for i in self.final(instructions)
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
class NoSecrets(DockerCheck):
    """No ENV or ARG (ONBUILD included) has a credential's name (hadolint DL3064's list and
    patterns, and more) or a key-shaped value (sk_live_, whsec_, ghp_, AKIA...)."""

    id = "docker.secrets"
    title = "No secrets in ENV or ARG"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.CRITICAL
    hadolint = "DL3064"
    remedy = "Pass secrets at run time (fly secrets set) or with RUN --mount=type=secret; rotate any that shipped in an image."

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        bad = []
        for i in instructions:
            keyword, args = i.keyword, i.args
            if keyword == "ONBUILD":
                keyword, _, args = args.partition(" ")
                keyword = keyword.upper()
            if keyword not in ("ENV", "ARG"):
                continue
            for key, value in _assignments(keyword, args):
                if sensitive(key) or value.strip("\"'").startswith(SECRET_VALUES):
                    bad.append(f"line {i.line}: {keyword} {key}")
        if bad:
            return failed(
                "secrets baked into the image: " + "; ".join(bad),
                Fix(
                    "Pass secrets at run time (fly secrets set / --secret mounts), never in ENV or ARG",
                    name,
                    "RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci",
                ),
                location=Location(name, int(bad[0].split()[1].rstrip(":"))),
                details=bad,
            )
        return passed("no secret-like ENV or ARG")


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


def stack_snippet(ctx: CheckContext, kind: str) -> str:
    """The generator's snippet for the app's stack (a Python app gets Python, not Node.js)."""
    from controltower.generate.dockerfile import fix_snippets

    try:
        return fix_snippets(ctx.spec, ctx.root)[kind]
    except Exception:  # the fix is a convenience; the finding stands without it
        return ""


def sensitive(name: str) -> bool:
    """hadolint DL3064's test (known names, suspicious substrings) widened with ours."""
    upper = name.upper()
    return (
        upper in KNOWN_SENSITIVE
        or any(s in name.lower() for s in SUSPICIOUS)
        or bool(SECRET_NAME.search(name))
    )


@register
class JsonCmd(DockerCheck):
    """The final stage has a CMD or ENTRYPOINT, each in the JSON (exec) form and declared
    once."""

    id = "docker.cmd_json"
    title = "CMD and ENTRYPOINT use the JSON (exec) form, once each"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    hadolint = "DL3025,DL4003,DL4004"
    remedy = 'Write CMD ["node", "server.js"]: the exec form makes the app PID 1\'s child that receives SIGTERM.'

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        commands = [i for i in self.final(instructions) if i.keyword in ("CMD", "ENTRYPOINT")]
        if not commands:
            return failed(
                "no CMD or ENTRYPOINT in the final stage",
                Fix("Declare the command", name, stack_snippet(ctx, "cmd")),
            )
        problems, codes, fixes, first = [], [], [], 0
        for i in commands:
            try:
                ok = isinstance(json.loads(i.args), list)
            except json.JSONDecodeError:
                ok = False
            if not ok:
                problems.append(
                    f"line {i.line}: {i.keyword} in shell form: the app does not get SIGTERM (DL3025)"
                )
                codes.append("DL3025")
                fixes.append(f"{i.keyword} {json.dumps(i.args.split())}")
                first = first or i.line
        for keyword, code in (("CMD", "DL4003"), ("ENTRYPOINT", "DL4004")):
            repeated = [i for i in commands if i.keyword == keyword]
            if len(repeated) > 1:
                problems.append(
                    f"line {repeated[-1].line}: {len(repeated)} {keyword} instructions; only the last takes effect ({code})"
                )
                codes.append(code)
                first = first or repeated[-1].line
        if problems:
            return failed(
                "; ".join(p.split(": ", 1)[1] for p in problems),
                Fix(
                    "Use the exec form, one CMD (and at most one ENTRYPOINT)",
                    name,
                    "\n".join(fixes) or stack_snippet(ctx, "cmd"),
                ),
                location=Location(name, first),
                details=problems,
                hadolint=",".join(sorted(set(codes))),
            )
        return passed("exec form")


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
            for i in self.final(instructions)
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
    """For Node apps, --max-old-space-size (in the Dockerfile, or NODE_OPTIONS / processes
    in fly.toml) is between a quarter and 85% of the VM memory."""

    id = "docker.node_heap"
    title = "Node's heap limit fits the VM memory"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    remedy = 'Set ENV NODE_OPTIONS="--max-old-space-size=<75% of the VM memory in MB>".'

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        if ctx.spec.service.stack not in NODE:
            return skipped("not a Node app")
        memory = ctx.spec.service.memory // (1024 * 1024)
        fly_name = ctx.spec.service.fly_toml
        fly_text = read_text(ctx.path(fly_name)) if ctx.target is Target.FLY else None
        fly: dict[str, object] = {}
        if fly_text:
            with contextlib.suppress(tomllib.TOMLDecodeError):
                fly = normalize(tomllib.loads(fly_text))
                memory = vm_memory_mb(fly)
        heap = int(memory * 0.75)
        fix = Fix(
            f"Cap the heap at about 75% of the VM's {memory} MB",
            name,
            f'ENV NODE_OPTIONS="--max-old-space-size={heap}"',
        )
        found: list[tuple[Location, str]] = [
            (Location(name, i.line), m) for i in instructions for m in HEAP_FLAG.findall(i.args)
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
