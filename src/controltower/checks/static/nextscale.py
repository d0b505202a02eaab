"""Next.js on several instances: one Server Actions key, a deployment id, a shared cache.

What Next.js' self-hosting guide asks of an app served by more than one
instance, or by two releases at once during a canary or blue-green deploy
(https://nextjs.org/docs/app/guides/self-hosting):

* Server Action ids are encrypted with a key each build draws at random unless
  ``NEXT_SERVER_ACTIONS_ENCRYPTION_KEY`` (base64 of 16, 24 or 32 bytes) is set
  *at build time*; a form rendered by one build and posted to another fails with
  "Failed to find Server Action"
  (https://nextjs.org/docs/messages/failed-to-find-server-action);
* ``deploymentId`` (or ``NEXT_DEPLOYMENT_ID`` at build) lets the client notice a
  response from another deployment and reload instead of mixing assets; Next
  sends it as the ``x-deployment-id`` request header and ``data-dpl-id`` on
  ``<html>`` (https://nextjs.org/docs/app/api-reference/config/next-config-js/deploymentId);
* ISR and the data cache live on each instance's disk unless ``cacheHandler``
  points them at shared storage; ``revalidatePath`` on one instance leaves the
  others stale.

On Vercel the platform does all three (skew protection, its own cache), so the
checks do not apply there.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import ClassVar

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Location,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
)
from controltower.checks.static.env import values
from controltower.checks.static.files import read_text
from controltower.spec import Spec
from controltower.spec.deploy import Strategy
from controltower.spec.nextconfig import NextConfig, cache_writes, find, server_actions
from controltower.spec.service import Target

KEY = "NEXT_SERVER_ACTIONS_ENCRYPTION_KEY"
DEPLOYMENT_ID = "NEXT_DEPLOYMENT_ID"
NOT_VERCEL = frozenset(Target) - {Target.VERCEL}
_OVERLAPPING = (Strategy.CANARY, Strategy.BLUEGREEN)


def serving(spec: Spec) -> tuple[int, bool]:
    """The most instances any environment runs, and whether a deploy serves two releases at
    once (canary or blue-green) in any environment."""
    most, overlap = spec.deploy.instances, spec.deploy.strategy in _OVERLAPPING
    for environment in spec.environments.values():
        deploy = environment.overrides.get("deploy")
        if not isinstance(deploy, dict):
            continue
        if isinstance(deploy.get("instances"), int):
            most = max(most, deploy["instances"])
        if deploy.get("strategy") in {s.value for s in _OVERLAPPING}:
            overlap = True
    return most, overlap


def why_several(spec: Spec) -> str | None:
    """Why several builds or instances serve at once, or None when only one does."""
    most, overlap = serving(spec)
    if most > 1:
        return f"{most} instances"
    if overlap:
        return "a canary or blue-green deploy serves two releases at once"
    return None


def valid_key(value: str) -> bool:
    """Base64 of a valid AES key length (16, 24 or 32 bytes), as Next.js requires."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) in (16, 24, 32)


class ScaleCheck(Check):
    category: ClassVar[Category] = Category.RELIABILITY
    gate: ClassVar[Gate] = Gate.DEPLOY
    targets: ClassVar[frozenset[Target]] = NOT_VERCEL

    async def run(self, ctx: CheckContext) -> Outcome:
        config = find(ctx.root)
        if config is None:
            return skipped("no next.config.*")
        why = why_several(ctx.spec)
        if why is None:
            return skipped("one instance, and no deploy serves two releases at once")
        return await self.judge(ctx, config, why)

    async def judge(self, ctx: CheckContext, config: NextConfig, why: str) -> Outcome:
        raise NotImplementedError


@register
class ServerActionsKey(ScaleCheck):
    """When the app has Server Actions ("use server") and several instances or releases
    serve at once: NEXT_SERVER_ACTIONS_ENCRYPTION_KEY is set (process, .env files, fly
    secrets), is base64 of 16, 24 or 32 bytes, and reaches the build (a Dockerfile passes
    it as a build secret or argument)."""

    id = "next.server_actions_key"
    title = "Server Actions share one encryption key across instances and releases"
    severity = Severity.HIGH
    remedy = (
        "Set NEXT_SERVER_ACTIONS_ENCRYPTION_KEY (openssl rand -base64 32) where the app is "
        "built, the same for every build."
    )

    async def judge(self, ctx: CheckContext, config: NextConfig, why: str) -> Outcome:
        actions = server_actions(ctx.root)
        if not actions:
            return skipped('no Server Actions ("use server") in the code')
        found = await values(ctx)
        seen = found.get(KEY)
        value = ctx.environ.get(KEY, seen.value if seen else None)
        where = "process environment" if KEY in ctx.environ else (seen.where if seen else "")
        fix = Fix(
            "Draw one key, keep it in the environment of every build",
            ".env.example",
            f"{KEY}=<openssl rand -base64 32>\n"
            + (f"fly deploy --build-secret {KEY}=...\n" if ctx.target is Target.FLY else ""),
        )
        if not where:
            return failed(
                f"Server Actions ({actions[0]}) with {why}, and {KEY} is set nowhere: each build "
                "draws its own key, so a form rendered by one build fails on another "
                '("Failed to find Server Action")',
                fix,
                location=Location(*_split(actions[0])),
            )
        if value is not None and not valid_key(value):
            return failed(
                f"{KEY} ({where}) is not base64 of a 16, 24 or 32-byte key; Next.js refuses it",
                fix,
            )
        dockerfile = read_text(ctx.path("Dockerfile"))
        if dockerfile is not None and KEY not in dockerfile:
            return failed(
                f"{KEY} is set ({where}) but the Dockerfile does not pass it to the build: Next.js "
                "embeds the key at build time, so each image gets its own",
                Fix(
                    "Pass it to `next build` as a build secret",
                    "Dockerfile",
                    f"RUN --mount=type=secret,id={KEY} \\\n"
                    f'    {KEY}="$(cat /run/secrets/{KEY})" npm run build',
                ),
                location=Location("Dockerfile"),
            )
        return passed(f"{KEY} is set ({where}) for {len(actions)} Server Action file(s)")


def _split(where: str) -> tuple[str, int]:
    name, _, line = where.rpartition(":")
    return name, int(line) if line.isdigit() else 0


@register
class DeploymentId(ScaleCheck):
    """When several instances or releases serve at once: next.config sets deploymentId, or
    NEXT_DEPLOYMENT_ID is set for the build, so the client reloads instead of mixing two
    builds (and tower's proxy can keep a client on its build by x-deployment-id)."""

    id = "next.deployment_id"
    title = "deploymentId names each build when several serve"
    severity = Severity.MEDIUM
    remedy = (
        "Set deploymentId in next.config (or NEXT_DEPLOYMENT_ID when building) to the release, "
        "e.g. the git commit."
    )

    async def judge(self, ctx: CheckContext, config: NextConfig, why: str) -> Outcome:
        if config.deployment_id:
            return passed(f"deploymentId set ({config.name}:{config.deployment_id})")
        dockerfile = read_text(ctx.path("Dockerfile")) or ""
        arg = re.search(rf"^ARG\s+{DEPLOYMENT_ID}\b", dockerfile, re.MULTILINE)
        if arg:
            line = dockerfile.count("\n", 0, arg.start()) + 1
            return passed(
                f"{DEPLOYMENT_ID} reaches the build as an ARG (Dockerfile:{line}; the build "
                f"passes --build-arg {DEPLOYMENT_ID}=<commit>)"
            )
        found = await values(ctx)
        if DEPLOYMENT_ID in ctx.environ or DEPLOYMENT_ID in found:
            where = (
                "process environment"
                if DEPLOYMENT_ID in ctx.environ
                else found[DEPLOYMENT_ID].where
            )
            return passed(f"{DEPLOYMENT_ID} set ({where})")
        return failed(
            f"no deploymentId with {why}: a browser holding one build's page fetches assets "
            "and navigations from another build without noticing",
            Fix(
                "Name each build (Next.js reads NEXT_DEPLOYMENT_ID at build time too)",
                config.name,
                "deploymentId: process.env.GIT_COMMIT_SHA,",
            ),
            location=Location(config.name),
        )


@register
class CacheHandler(ScaleCheck):
    """When the app uses ISR or the data cache (revalidate, revalidatePath, revalidateTag,
    unstable_cache, "use cache") and several instances serve: next.config sets cacheHandler
    (or cacheHandlers), so every instance reads and revalidates one cache."""

    id = "next.cache_handler"
    title = "ISR shares one cache across instances"
    severity = Severity.MEDIUM
    remedy = "Point cacheHandler in next.config at shared storage (Redis, S3, the database)."

    async def judge(self, ctx: CheckContext, config: NextConfig, why: str) -> Outcome:
        uses = cache_writes(ctx.root)
        if not uses:
            return skipped("no ISR or data cache (revalidate, revalidatePath, unstable_cache)")
        if config.cache_handler:
            return passed(f"cacheHandler set ({config.name}:{config.cache_handler})")
        return failed(
            f"ISR or the data cache ({', '.join(uses[:3])}) with {why} and no cacheHandler: "
            "each instance keeps and revalidates its own copy, so pages differ between "
            "instances and revalidatePath reaches one of them",
            Fix(
                "Share the cache",
                config.name,
                "cacheHandler: require.resolve('./cache-handler.mjs'),\n"
                "cacheMaxMemorySize: 0, // the shared handler is the only cache",
            ),
            location=Location(*_split(uses[0])),
        )
