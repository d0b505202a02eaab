"""Known vulnerabilities in dependencies, found by the ecosystem's own auditors.

``npm audit --json --package-lock-only`` reads package-lock.json and asks the
registry's bulk advisory endpoint (the npm registry's documented
``POST /-/npm/v1/security/advisories/bulk``; ``npm_config_registry`` and
``.npmrc`` apply); ``pip-audit --no-deps --disable-pip --format json`` reads
each requirements file and asks PyPI. Neither result is guessed: when an
auditor is missing, cannot reach its service, or skips a dependency, the check
says "not run" and why, never "pass".
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Item,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)
from controltower.checks.static.files import tool_path
from controltower.spec.waivers import ADVISORY_CHECK

TIMEOUT = 120.0
BLOCKING = frozenset({"critical", "high", "unknown"})
ORDER = ("critical", "high", "moderate", "low", "info", "unknown")
REQUIREMENTS = (
    "requirements.txt",
    "requirements-prod.txt",
    "requirements/production.txt",
    "requirements/prod.txt",
    "requirements/base.txt",
)


@dataclass
class Audit:
    """What one auditor found in one file, or why it did not run."""

    tool: str
    file: str
    items: list[Item] = field(default_factory=list)
    not_run: str = ""


async def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=str(cwd),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, "", f"timed out after {TIMEOUT:.0f} s"
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def npm_items(report: dict[str, Any], file: str) -> list[Item]:
    """Advisories of an ``npm audit --json`` report (auditReportVersion 2), one per package and advisory."""
    items = []
    for name, vuln in sorted((report.get("vulnerabilities") or {}).items()):
        for via in vuln.get("via") or []:
            if not isinstance(via, dict):
                continue  # a package that is vulnerable through another one
            url = str(via.get("url") or "")
            rule = (
                url.rstrip("/").rsplit("/", 1)[-1]
                if "/advisories/" in url
                else f"npm-{via.get('source')}"
            )
            items.append(
                Item(
                    tool="npm audit",
                    rule=rule,
                    level=str(via.get("severity") or "unknown"),
                    message=f"{name} {via.get('range') or ''}: {via.get('title') or 'advisory'}".replace(
                        "  ", " "
                    ),
                    file=file,
                    url=url,
                )
            )
    return items


def pip_items(report: dict[str, Any], file: str) -> tuple[list[Item], list[str]]:
    """Advisories of a ``pip-audit --format json`` report and the dependencies it skipped."""
    items, skipped_ = [], []
    for dep in report.get("dependencies") or []:
        if dep.get("skip_reason"):
            skipped_.append(str(dep["skip_reason"]))
            continue
        for vuln in dep.get("vulns") or []:
            aliases = [str(a) for a in vuln.get("aliases") or []]
            ghsa = next((a for a in aliases if a.startswith("GHSA-")), "")
            rule = ghsa or str(vuln.get("id"))
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            items.append(
                Item(
                    tool="pip-audit",
                    rule=rule,
                    # pip-audit's report carries no severity: an unknown one counts as high.
                    level="unknown",
                    message=f"{dep.get('name')} {dep.get('version')}: {vuln.get('id')} (fixed in {fixes})",
                    file=file,
                    url=f"https://github.com/advisories/{ghsa}"
                    if ghsa
                    else f"https://osv.dev/vulnerability/{vuln.get('id')}",
                )
            )
    return items, skipped_


async def audit_npm(root: Path, env: dict[str, str]) -> Audit:
    audit = Audit("npm audit", "package-lock.json")
    npm = tool_path("npm")
    if npm is None:
        audit.not_run = "npm is not installed"
        return audit
    code, out, err = await _run([npm, "audit", "--json", "--package-lock-only"], root, env)
    try:
        report = json.loads(out or "{}")
    except json.JSONDecodeError:
        report = {}
    if "error" in report or not isinstance(report.get("vulnerabilities"), dict):
        why = str(report.get("message") or "") or err.strip().splitlines()[-1:] or [f"exit {code}"]
        audit.not_run = f"npm audit could not reach its advisory service: {why if isinstance(why, str) else why[0]}"
        return audit
    audit.items = npm_items(report, audit.file)
    return audit


async def audit_pip(root: Path, file: str, env: dict[str, str]) -> Audit:
    audit = Audit("pip-audit", file)
    exe = tool_path("pip-audit")
    if exe is None:
        audit.not_run = "pip-audit is not installed (pip install 'controltower[audit]')"
        return audit
    args = [
        exe,
        "-r",
        file,
        "--no-deps",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    code, out, err = await _run(args, root, env)
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        audit.not_run = f"pip-audit failed (exit {code}): {lines[-1] if lines else 'no output'}"
        return audit
    audit.items, skipped_ = pip_items(report, file)
    if skipped_:
        audit.not_run = f"pip-audit could not audit {len(skipped_)} dependenc{'y' if len(skipped_) == 1 else 'ies'}: {skipped_[0]}"
    return audit


def waive_advisories(items: list[Item], ctx: CheckContext) -> tuple[list[Item], list[str]]:
    """Items left after the live advisory waivers, and a line per waived item (or per
    waiver that matched nothing, so it can go). Expired waivers waive nothing here:
    ``waivers.expired`` fails them."""
    today = ctx.clock.now().date()
    live = [
        w
        for w in ctx.spec.waivers
        if w.advisory
        and w.check == ADVISORY_CHECK
        and w.expires >= today
        and (not w.environments or (ctx.environment or "") in w.environments)
    ]
    kept: list[Item] = []
    lines: list[str] = []
    used: set[str] = set()
    for item in items:
        waiver = next((w for w in live if w.matches(item.rule, item.message)), None)
        if waiver is None:
            kept.append(item)
            continue
        used.add(waiver.advisory)
        lines.append(
            f"waived: {item.file}: {item.rule} ({item.level}): {item.message} "
            f"(until {waiver.expires.isoformat()}: {waiver.reason})"
        )
    lines += [
        f"waiver for {w.advisory} matches no advisory found; it can go"
        for w in live
        if w.advisory not in used
    ]
    return kept, lines


@register
class Vulnerabilities(Check):
    """No dependency has a known critical or high advisory: npm audit on package-lock.json,
    pip-audit on requirements files (pip-audit gives no severity, so each of its advisories
    counts as high). An auditor that is missing, offline or skips a dependency makes the
    check "not run" (a warning that says why), never a pass."""

    id = "deps.vulnerabilities"
    title = "No known critical or high vulnerability in dependencies"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    remedy = "Upgrade each package to a fixed version (npm audit fix, pip install -U), or waive an advisory that does not apply, with a reason and an expiry."

    async def run(self, ctx: CheckContext) -> Outcome:
        env = {**os.environ, **ctx.environ}
        env.pop("npm_config_audit", None)
        jobs = []
        if (ctx.root / "package-lock.json").is_file():
            jobs.append(audit_npm(ctx.root, env))
        for name in REQUIREMENTS:
            if (ctx.root / name).is_file():
                jobs.append(audit_pip(ctx.root, name, env))
        if not jobs:
            return skipped("no package-lock.json or requirements file")
        audits = list(await asyncio.gather(*jobs))
        items = sorted(
            (i for a in audits for i in a.items),
            key=lambda i: (ORDER.index(i.level) if i.level in ORDER else len(ORDER), i.rule),
        )
        items, waived = waive_advisories(items, ctx)
        counts = {level: sum(1 for i in items if i.level == level) for level in ORDER}
        summary = (
            ", ".join(f"{n} {level}" for level, n in counts.items() if n) or "no known advisory"
        )
        scanned = ", ".join(f"{a.file} ({a.tool})" for a in audits)
        details = [f"{i.file}: {i.rule} ({i.level}): {i.message}" for i in items] + waived
        not_run = [f"not run: {a.file}: {a.not_run}" for a in audits if a.not_run]
        blocking = [i for i in items if i.level in BLOCKING]
        fix = Fix(
            "Upgrade the affected packages to fixed versions",
            items[0].file if items else "",
            "npm audit fix"
            if any(i.tool == "npm audit" for i in blocking)
            else "pip install -U <package>  # then pin the fixed version",
        )
        data: dict[str, Any] = {
            "counts": counts,
            "not_run": [a.not_run for a in audits if a.not_run],
            "waived": waived,
        }
        if blocking:
            return failed(
                f"{summary} in {scanned}" + (f"; {len(not_run)} not run" if not_run else ""),
                fix,
                details=details + not_run,
                items=items,
                **data,
            )
        if not_run:
            return warned(
                "not run: " + "; ".join(f"{a.file}: {a.not_run}" for a in audits if a.not_run),
                Fix(
                    "Let the auditor reach its service (network, registry) and run again",
                    "",
                    "\n".join(
                        dict.fromkeys(
                            f"pip-audit -r {a.file}"
                            if a.tool == "pip-audit"
                            else "npm audit --package-lock-only"
                            for a in audits
                            if a.not_run
                        )
                    ),
                ),
                details=details + not_run,
                items=items,
                **data,
            )
        if items:
            return warned(f"{summary} in {scanned}", fix, details=details, items=items, **data)
        count = sum(1 for line in waived if line.startswith("waived:"))
        return passed(
            f"{summary} in {scanned}" + (f"; {count} advisory waived" if count else ""),
            **data,
        )
