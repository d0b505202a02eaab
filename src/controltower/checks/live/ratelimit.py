"""Rate limiting in place: a bounded burst against one configured route of the given URL."""

from __future__ import annotations

import asyncio

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

CONCURRENCY = 10


@register
class RateLimited(Check):
    """A burst of at most [security] rate_limit_burst requests to [security] rate_limit_path,
    sent only to the URL being checked, meets a 429 that carries Retry-After (and stops
    there). Skipped when no path is configured."""

    id = "security.rate_limit"
    title = "A burst against a rate-limited route is answered 429 with Retry-After"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    kind = "live"
    exclusive = True
    remedy = "Limit the route (appkit RateLimit, the generated Next.js middleware, or the proxy) and answer 429 with Retry-After."

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.client is not None and ctx.url is not None
        path = ctx.spec.security.rate_limit_path
        if not path:
            return skipped("no [security] rate_limit_path to burst")
        budget = ctx.spec.security.rate_limit_burst
        url = ctx.url.rstrip("/") + "/" + path.lstrip("/")
        client = ctx.client
        sent = 0
        limited: list[tuple[int, str | None]] = []
        stop = asyncio.Event()

        async def worker() -> None:
            nonlocal sent
            while sent < budget and not stop.is_set():
                sent += 1
                response = await client.get(url)
                if response.status_code == 429:
                    limited.append((sent, response.headers.get("retry-after")))
                    stop.set()

        await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, budget))))
        fix = Fix(
            "Limit the route and answer 429 with Retry-After",
            "app.py",
            f'app = RateLimit(app, limit=100, window=60, paths=["{path}"])',
        )
        if not limited:
            return failed(f"{sent} requests to {path} in a burst: none was limited", fix, sent=sent)
        at, retry_after = limited[0]
        if not retry_after:
            return failed(
                f"{path} answered 429 after {at} requests, without Retry-After", fix, sent=sent
            )
        return passed(
            f"{path} answered 429 with Retry-After: {retry_after} after {at} requests", sent=sent
        )
