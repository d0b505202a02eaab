"""The exec driver has the commands it runs: a deploy that cannot start is caught before it."""

from __future__ import annotations

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
from controltower.spec.deploy import DriverName


@register
class ExecCommands(Check):
    """With driver = "exec", [deploy.exec] has a deploy and a switch command (the driver
    refuses to start without them)."""

    id = "deploy.exec_commands"
    title = "The exec driver knows how to deploy and switch"
    category = Category.DELIVERY
    gate = Gate.DEPLOY
    severity = Severity.HIGH
    remedy = "Fill in [deploy.exec] deploy and switch in tower.toml: the platform's commands."

    async def run(self, ctx: CheckContext) -> Outcome:
        if ctx.spec.deploy.driver is not DriverName.EXEC:
            return skipped(f"driver is {ctx.spec.deploy.driver.value}")
        spec = ctx.spec.deploy.exec
        empty = [key for key in ("deploy", "switch") if not getattr(spec, key).strip()]
        if not empty:
            return passed("deploy and switch are set")
        return failed(
            f"[deploy.exec] {' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty: "
            "`tower deploy` refuses to start until the platform's commands are filled in",
            Fix(
                "Say how a release starts and takes traffic (each command gets "
                "TOWER_RELEASE_ID, TOWER_IMAGE, TOWER_URL, TOWER_WEIGHT)",
                "tower.toml",
                "[deploy.exec]\n"
                'deploy = "./scripts/deploy.sh \\"$TOWER_RELEASE_ID\\""\n'
                'switch = "./scripts/route.sh \\"$TOWER_RELEASE_ID\\" \\"$TOWER_WEIGHT\\""',
            ),
            location=Location("tower.toml"),
        )
