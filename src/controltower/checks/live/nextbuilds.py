"""Next.js builds as the running service shows them: one build per release, told apart.

Each answer of a Next.js page carries the build id (the ``"b"`` field of the App
Router's flight payload, ``buildId`` of the Pages Router's ``__NEXT_DATA__``, or
``/_next/static/<id>/_buildManifest.js``) and, when ``deploymentId`` is set, the
deployment id (``data-dpl-id`` on ``<html>``, ``x-nextjs-deployment-id`` on
navigation answers; https://nextjs.org/docs/app/api-reference/config/next-config-js/deploymentId).
Instances built separately each draw their own Server Actions key unless
``NEXT_SERVER_ACTIONS_ENCRYPTION_KEY`` is set at build
(https://nextjs.org/docs/messages/failed-to-find-server-action), so two build
ids behind one URL that no deployment id tells apart are a Server Action that
fails on the next request.
"""

from __future__ import annotations

import re

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
)
from controltower.checks.static.nextscale import KEY, NOT_VERCEL, why_several
from controltower.spec.nextconfig import find

SAMPLES = 8
SPLIT_COOKIE = "tower-split"
_BUILD_ID = (
    re.compile(r'\\?"b\\?":\\?"([A-Za-z0-9_-]{6,64})\\?"'),  # app router: the flight payload
    re.compile(r'"buildId":"([A-Za-z0-9_-]{6,64})"'),  # pages router: __NEXT_DATA__
    re.compile(r"/_next/static/([A-Za-z0-9_-]{6,64})/_(?:buildManifest|ssgManifest)\.js"),
)
_DPL = re.compile(r"""\bdata-dpl-id=["']([^"']+)["']""")


def observe(html: str, headers: dict[str, str]) -> tuple[str | None, str | None]:
    """The Next.js build id and deployment id a page shows, each None when absent."""
    build = None
    for pattern in _BUILD_ID:
        match = pattern.search(html)
        if match:
            build = match.group(1)
            break
    dpl = _DPL.search(html)
    deployment = headers.get("x-nextjs-deployment-id") or (dpl.group(1) if dpl else None)
    return build, deployment


@register
class Builds(Check):
    """The home page, fetched 8 times as a new visitor (no split cookie), shows one
    Next.js build, or builds that deploymentId tells apart; and a deployment id when several
    instances or releases serve."""

    id = "next.builds"
    title = "Instances serve one build, or builds told apart by deploymentId"
    category = Category.RELIABILITY
    gate = Gate.DEPLOY
    severity = Severity.HIGH
    kind = "live"
    targets = NOT_VERCEL
    remedy = (
        "Build once and run that build on every instance; set deploymentId and "
        f"{KEY} at build time."
    )

    async def run(self, ctx: CheckContext) -> Outcome:
        if find(ctx.root) is None:
            return skipped("no next.config.*")
        if ctx.client is None or ctx.url is None:
            return skipped("no URL")
        builds: dict[str, set[str | None]] = {}
        statuses = []
        for _ in range(SAMPLES):
            ctx.client.cookies.delete(SPLIT_COOKIE)
            response = await ctx.client.get(ctx.url.rstrip("/") + "/")
            statuses.append(response.status_code)
            build, deployment = observe(response.text, dict(response.headers))
            if build is not None:
                builds.setdefault(build, set()).add(deployment)
        ctx.client.cookies.delete(SPLIT_COOKIE)
        if not builds:
            return skipped(f"the home page ({statuses[-1]}) shows no Next.js build id")
        why = why_several(ctx.spec)
        named = {b: d for b, ids in builds.items() for d in ids if d}
        fix = Fix(
            "Build once per release; name the build and keep one Server Actions key",
            "next.config",
            "deploymentId: process.env.GIT_COMMIT_SHA,\n"
            f"# and {KEY}=<openssl rand -base64 32> in the build's environment",
        )
        if len(builds) == 1:
            build = next(iter(builds))
            if why and build not in named:
                return failed(
                    f"build {build} serves with {why} but shows no deployment id: "
                    "deploymentId is not set in the build",
                    fix,
                )
            return passed(f"one build ({build}) in {SAMPLES} answers")
        ids = [named.get(b) for b in builds]
        if all(ids) and len(set(ids)) == len(ids) and all(len(d) == 1 for d in builds.values()):
            return passed(
                f"{len(builds)} builds serve at once (a deploy in progress?), each named by its "
                f"deployment id ({', '.join(str(i) for i in ids)}): clients reload across them"
            )
        return failed(
            f"{len(builds)} builds answer behind one URL ({', '.join(sorted(builds))}) and no "
            "deployment id tells them apart: a page from one build posting a Server Action or "
            "navigating on another fails unless each build was made with the same "
            f"{KEY}",
            fix,
            builds=sorted(builds),
        )
