"""Whether anything outside would notice ``tower serve`` itself dying."""

from __future__ import annotations

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import Category, Fix, Gate, Outcome, Severity, passed, warned


@register
class ServerWatchdog(Check):
    """[server] heartbeat_url names a dead man's switch that tower serve pings (judged when
    checking a running service with --url, not in a static pre-deploy gate)."""

    id = "server.watchdog"
    title = "Something outside notices when tower serve dies"
    category = Category.OBSERVABILITY
    gate = Gate.PRODUCTION
    severity = Severity.LOW
    kind = "live"
    remedy = (
        "Create a check at Healthchecks.io (or any dead man's switch) with a period of "
        "1 minute and set [server] heartbeat_url to its ping URL."
    )

    async def run(self, ctx: CheckContext) -> Outcome:
        if ctx.spec.server.heartbeat_url is not None:
            every = ctx.spec.server.heartbeat_interval
            return passed(f"tower serve pings [server] heartbeat_url every {every:g}s")
        return warned(
            "no [server] heartbeat_url: if tower serve dies, monitors, alerts and error "
            "tracking stop and nothing tells anyone",
            Fix(
                "Point tower serve at a dead man's switch",
                "tower.toml",
                '[server]\nheartbeat_url = "${HEALTHCHECKS_PING_URL}"',
            ),
        )
