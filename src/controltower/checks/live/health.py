"""Health endpoints: they answer 200 with JSON, carry the required fields, and are fast."""

from __future__ import annotations

import math
from typing import Any

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import Category, Fix, Gate, Outcome, Severity, failed, passed

FIX_LIVE = Fix(
    "Serve a cheap liveness endpoint that answers 200 with JSON (appkit does this for Python apps)",
    "app/api/health/live/route.ts",
    "export function GET() {\n  return Response.json({ status: 'pass' });\n}",
)


async def _probe(
    ctx: CheckContext, path: str, required: list[str]
) -> tuple[Outcome | None, dict[str, Any]]:
    response = await ctx.get(path)
    if response.status_code != 200:
        return failed(f"{path} answered {response.status_code}, not 200", FIX_LIVE), {}
    kind = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if not (kind.endswith("json") or kind.endswith("+json")):
        return failed(f"{path} answered {kind or 'no content type'}, not JSON", FIX_LIVE), {}
    try:
        body = response.json()
    except ValueError:
        return failed(f"{path} body is not valid JSON", FIX_LIVE), {}
    if not isinstance(body, dict):
        return failed(f"{path} body is not a JSON object", FIX_LIVE), {}
    missing = [f for f in required if _field(body, f) is None]
    if missing:
        return failed(
            f"{path} lacks {', '.join(missing)}",
            Fix(
                "Add the fields the spec requires ([health] required_fields)",
                "",
                '{"status": "pass", "version": "<release>"}',
            ),
        ), body
    return None, body


def _field(body: dict[str, Any], dotted: str) -> Any:
    value: Any = body
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


@register
class Liveness(Check):
    """The liveness path answers 200 with a JSON object."""

    id = "health.liveness"
    title = "Liveness answers 200 with JSON"
    category = Category.HEALTH
    gate = Gate.CORE
    severity = Severity.CRITICAL
    kind = "live"
    remedy = "Serve a cheap liveness endpoint that answers 200 with JSON (appkit does it for Python apps)."

    async def run(self, ctx: CheckContext) -> Outcome:
        problem, _ = await _probe(ctx, ctx.spec.health.liveness, [])
        return problem or passed(f"{ctx.spec.health.liveness} is live")


@register
class Readiness(Check):
    """The readiness path answers 200 with a JSON object holding [health] required_fields,
    and its status is not fail/down."""

    id = "health.readiness"
    title = "Readiness answers 200 with JSON and the required fields"
    category = Category.HEALTH
    gate = Gate.CORE
    severity = Severity.CRITICAL
    kind = "live"
    remedy = 'Serve readiness with the required fields, e.g. {"status": "pass", "version": "..."}.'

    async def run(self, ctx: CheckContext) -> Outcome:
        problem, body = await _probe(
            ctx, ctx.spec.health.readiness, ctx.spec.health.required_fields
        )
        if problem:
            return problem
        status = body.get("status")
        if isinstance(status, str) and status.lower() in ("fail", "down", "unhealthy", "error"):
            return failed(f"{ctx.spec.health.readiness} reports status {status!r}", FIX_LIVE)
        return passed(
            f"{ctx.spec.health.readiness} is ready ({', '.join(ctx.spec.health.required_fields)})"
        )


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@register
class Latency(Check):
    """After one warm-up request, [health] samples (20) sequential requests to the readiness
    path, run after every other check, have a p95 within [health] latency_budget (100 ms)."""

    id = "health.latency"
    title = "Readiness p95 latency is within budget"
    category = Category.PERFORMANCE
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    kind = "live"
    exclusive = True
    remedy = "Keep readiness cheap: time-box each dependency check and cache its result for a few seconds."

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.client is not None and ctx.url is not None
        health = ctx.spec.health
        url = ctx.url.rstrip("/") + health.readiness
        await ctx.client.get(url, timeout=health.timeout)
        samples = []
        for _ in range(health.samples):
            started = ctx.clock.monotonic()
            await ctx.client.get(url, timeout=health.timeout)
            samples.append(ctx.clock.monotonic() - started)
        value = p95(samples)
        budget = health.latency_budget
        message = (
            f"p95 {value * 1000:.1f} ms over {len(samples)} samples (budget {budget * 1000:.0f} ms)"
        )
        p95_ms, max_ms = round(value * 1000, 2), round(max(samples) * 1000, 2)
        if value > budget:
            return failed(
                message,
                Fix(
                    self.remedy,
                    "tower.toml",
                    f'[health]\nlatency_budget = "{max(int(value * 1000 * 1.5), 1)}ms"   # only if the budget itself is wrong',
                ),
                p95_ms=p95_ms,
                max_ms=max_ms,
            )
        return passed(message, p95_ms=p95_ms, max_ms=max_ms)
