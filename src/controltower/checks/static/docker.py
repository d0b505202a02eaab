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
from controltower.checks.static.files import read_text
from controltower.checks.static.flyschema import vm_memory_mb
from controltower.spec.service import Stack, Target

CONTAINERS = frozenset({Target.DOCKER, Target.KUBERNETES, Target.FLY})
NODE = (Stack.NODE, Stack.NEXTJS)
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int
    stage: int


def parse(text: str) -> list[Instruction]:
    """Instructions with their first line, continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    buffer, start, stage = "", 0, -1
    for number, raw in enumerate(text.splitlines(), start=1):
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
        keyword, _, args = buffer.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), start, stage))
        buffer = ""
    return out


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
class MultiStage(DockerCheck):
    id = "docker.multistage"
    title = "The image is built in stages"
    category = Category.PERFORMANCE
    gate = Gate.DEPLOY
    severity = Severity.LOW

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        stages = sum(1 for i in instructions if i.keyword == "FROM")
        if stages < 2:
            return failed(
                "one stage: build tools and sources ship in the final image",
                Fix(
                    "Build in one stage, copy only the output into a slim runtime stage",
                    name,
                    "FROM node:22-slim AS build\nWORKDIR /app\nCOPY . .\nRUN npm ci && npm run build\n\n"
                    "FROM node:22-slim\nWORKDIR /app\nCOPY --from=build /app/.next/standalone ./",
                ),
            )
        return passed(f"{stages} stages")


@register
class NonRootUser(DockerCheck):
    id = "docker.user"
    title = "The final stage runs as a non-root USER"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    hadolint = "DL3002"

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
    id = "docker.base_pinned"
    title = "Base images are pinned to a version, not latest"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    hadolint = "DL3007,DL3006"

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        stages: set[str] = set()
        bad = []
        first = 0
        for i in instructions:
            if i.keyword != "FROM":
                continue
            words = [w for w in i.args.split() if not w.startswith("--")]
            image = words[0] if words else ""
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            if image.lower() in stages or image == "scratch" or "@sha256:" in image:
                continue
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                bad.append(
                    f"line {i.line}: {image} ({'DL3007 latest' if tag else 'DL3006 no tag'})"
                )
                first = first or i.line
        if bad:
            base = "node:22-slim" if ctx.spec.service.stack in NODE else "python:3.12-slim"
            return failed(
                f"unpinned base image{'s' if len(bad) > 1 else ''}: {'; '.join(bad)}",
                Fix("Pin the base image to a version (or a digest)", name, f"FROM {base}"),
                location=Location(name, first),
                details=bad,
            )
        return passed("every base image is pinned")


@register
class InitProcess(DockerCheck):
    id = "docker.init"
    title = "An init process (tini or dumb-init) reaps zombies and forwards signals"
    category = Category.RELIABILITY
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    advice_on = frozenset({Target.FLY})
    advice_reason = "Fly Machines run Fly's own init as PID 1"

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
    id = "docker.healthcheck"
    title = "The image declares a HEALTHCHECK"
    category = Category.HEALTH
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    advice_on = frozenset({Target.FLY, Target.KUBERNETES})
    advice_reason = "the platform ignores HEALTHCHECK; checks live in fly.toml or the pod's probes"

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
        )


@register
class NoSecrets(DockerCheck):
    id = "docker.secrets"
    title = "No secrets in ENV or ARG"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.CRITICAL

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        bad = []
        for i in instructions:
            if i.keyword not in ("ENV", "ARG"):
                continue
            for key, _, value in re.findall(
                r"([A-Za-z_][A-Za-z0-9_]*)(=(\"[^\"]*\"|'[^']*'|\S+))?", i.args
            ):
                if SECRET_NAME.search(key) or value.strip("=\"'").startswith(
                    ("sk_live_", "sk_test_", "whsec_")
                ):
                    bad.append(f"line {i.line}: {i.keyword} {key}")
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


@register
class JsonCmd(DockerCheck):
    id = "docker.cmd_json"
    title = "CMD and ENTRYPOINT use the JSON (exec) form"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    hadolint = "DL3025"

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        commands = [i for i in self.final(instructions) if i.keyword in ("CMD", "ENTRYPOINT")]
        if not commands:
            return failed(
                "no CMD or ENTRYPOINT in the final stage",
                Fix("Declare the command", name, 'CMD ["node", "server.js"]'),
            )
        for i in commands:
            try:
                ok = isinstance(json.loads(i.args), list)
            except json.JSONDecodeError:
                ok = False
            if not ok:
                exec_form = json.dumps(i.args.split())
                return failed(
                    f"{i.keyword} in shell form: the app does not get SIGTERM",
                    Fix("Use the exec form", name, f"{i.keyword} {exec_form}"),
                    location=Location(name, i.line),
                )
        return passed("exec form")


@register
class NodeEnv(DockerCheck):
    id = "docker.node_env"
    title = "NODE_ENV=production in the runtime image"
    category = Category.CONFIG
    gate = Gate.DEPLOY
    severity = Severity.LOW

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
    id = "docker.node_heap"
    title = "Node's heap limit fits the VM memory"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM

    def judge(self, ctx: CheckContext, name: str, instructions: list[Instruction]) -> Outcome:
        if ctx.spec.service.stack not in NODE:
            return skipped("not a Node app")
        memory = ctx.spec.service.memory // (1024 * 1024)
        fly_text = (
            read_text(ctx.path(ctx.spec.service.fly_toml)) if ctx.target is Target.FLY else None
        )
        if fly_text:
            with contextlib.suppress(tomllib.TOMLDecodeError):
                memory = vm_memory_mb(tomllib.loads(fly_text))
        heap = int(memory * 0.75)
        fix = Fix(
            f"Cap the heap at about 75% of the VM's {memory} MB",
            name,
            f'ENV NODE_OPTIONS="--max-old-space-size={heap}"',
        )
        found = [
            (i, m)
            for i in instructions
            for m in re.findall(r"--max[-_]old[-_]space[-_]size[= ](\d+)", i.args)
        ]
        if not found:
            return warned(
                f"no --max-old-space-size: Node may grow past the VM's {memory} MB and be OOM-killed",
                fix,
            )
        instruction, value = found[-1]
        size = int(value)
        if size > memory * 0.85:
            return failed(
                f"--max-old-space-size={size} is above 85% of the VM's {memory} MB",
                fix,
                location=Location(name, instruction.line),
            )
        if size < memory * 0.25:
            return warned(
                f"--max-old-space-size={size} uses under a quarter of the VM's {memory} MB",
                fix,
                location=Location(name, instruction.line),
            )
        return passed(f"heap {size} MB of {memory} MB")
