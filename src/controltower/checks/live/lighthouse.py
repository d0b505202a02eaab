"""Lighthouse against the ``--url`` being checked, held to ``[budgets.web]``.

tower runs the real Lighthouse (npm ``lighthouse``; the tests pin 12.2.3, the last
release that runs on Node 20) with a Chromium it finds (``CHROME_PATH``,
``TOWER_CHROMIUM``, else ``chromium`` on PATH), one page at a time, performance
category only, and reads its JSON report: the performance score and the audits'
``numericValue`` (LCP, FCP, TBT, Speed Index in milliseconds, CLS unitless, total
byte weight in bytes). Lighthouse is found at ``TOWER_LIGHTHOUSE``, on PATH, or
in the service's ``node_modules/.bin``. When Lighthouse or Chromium is missing
the check is "not run" and says which, never a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    warned,
)
from controltower.spec.budgets import WebBudgetsSpec

# budget key -> (Lighthouse audit id, label, unit of numericValue)
AUDITS: dict[str, tuple[str, str, str]] = {
    "lcp": ("largest-contentful-paint", "LCP", "ms"),
    "fcp": ("first-contentful-paint", "FCP", "ms"),
    "tbt": ("total-blocking-time", "TBT", "ms"),
    "speed_index": ("speed-index", "Speed Index", "ms"),
    "cls": ("cumulative-layout-shift", "CLS", ""),
    "total_bytes": ("total-byte-weight", "total bytes", "bytes"),
}
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"


class NotRun(Exception):
    """Lighthouse could not run here; the message says why."""


@dataclass
class PageResult:
    page: str
    score: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    version: str = ""
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return f"{self.page}: {self.error}"
        parts = [f"performance {self.score}" if self.score is not None else "no score"]
        for key, (_audit, label, unit) in AUDITS.items():
            if key in self.metrics:
                parts.append(f"{label} {_show(self.metrics[key], unit)}")
        return f"{self.page}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "score": self.score,
            "metrics": self.metrics,
            "version": self.version,
            "error": self.error,
        }


def _show(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "bytes":
        return f"{value / 1024:.1f} KiB" if value >= 1024 else f"{value:.0f} B"
    return f"{value:.3f}"


def find_lighthouse(environ: dict[str, str], root: Path) -> str | None:
    explicit = environ.get("TOWER_LIGHTHOUSE")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    local = root / "node_modules" / ".bin" / "lighthouse"
    return shutil.which("lighthouse", path=environ.get("PATH")) or (
        str(local) if local.is_file() else None
    )


def find_chromium(environ: dict[str, str]) -> str | None:
    for name in ("CHROME_PATH", "TOWER_CHROMIUM"):
        if environ.get(name) and Path(environ[name]).is_file():
            return environ[name]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return found
    return None


def read_report(page: str, report: dict[str, Any]) -> PageResult:
    """Score and metrics of one Lighthouse JSON report (``runtimeError``: the page failed)."""
    version = str(report.get("lighthouseVersion", ""))
    error = report.get("runtimeError")
    if isinstance(error, dict) and error.get("code"):
        message = str(error.get("message") or error["code"])
        return PageResult(page, version=version, error=f"Lighthouse could not load it: {message}")
    category = report.get("categories", {}).get("performance", {})
    score = category.get("score")
    audits = report.get("audits", {})
    metrics: dict[str, float] = {}
    for key, (audit, _label, _unit) in AUDITS.items():
        value = audits.get(audit, {}).get("numericValue")
        if isinstance(value, int | float):
            metrics[key] = float(value)
    return PageResult(
        page,
        score=round(score * 100) if isinstance(score, int | float) else None,
        metrics=metrics,
        version=version,
    )


def over_budget(result: PageResult, budgets: WebBudgetsSpec) -> list[str]:
    """Each budget the page breaks, as a sentence; a page that did not load breaks them all."""
    if result.error:
        return [result.describe()]
    broken: list[str] = []
    if budgets.performance is not None and (
        result.score is None or result.score < budgets.performance
    ):
        broken.append(f"{result.page}: performance {result.score} < {budgets.performance} budget")
    for key, (_audit, label, unit) in AUDITS.items():
        limit = getattr(budgets, key)
        if limit is None:
            continue
        limit_value = float(limit) * 1000 if unit == "ms" else float(limit)
        value = result.metrics.get(key)
        if value is None:
            broken.append(f"{result.page}: no {label} in the report")
        elif value > limit_value:
            broken.append(
                f"{result.page}: {label} {_show(value, unit)} > {_show(limit_value, unit)} budget"
            )
    return broken


def command(
    lighthouse: str, url: str, budgets: WebBudgetsSpec, chrome_flags: str = CHROME_FLAGS
) -> list[str]:
    args = [
        lighthouse,
        url,
        "--output=json",
        "--output-path=stdout",
        "--quiet",
        "--only-categories=performance",
        f"--chrome-flags={chrome_flags}",
        f"--max-wait-for-load={int(budgets.timeout * 1000 / 2)}",
    ]
    if budgets.form_factor == "desktop":
        args.append("--preset=desktop")
    return args


async def run_lighthouse(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run Lighthouse, its Chromium in the same process group (killed on timeout)."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise NotRun(f"Lighthouse took longer than {timeout:.0f}s") from None
    if process.returncode != 0 and not out.strip():
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise NotRun(f"Lighthouse exited {process.returncode}: {last[0][:300]}")
    try:
        report = json.loads(out)
    except ValueError:
        raise NotRun("Lighthouse printed no JSON report") from None
    if not isinstance(report, dict):
        raise NotRun("Lighthouse printed no JSON report")
    return report


@register
class LighthouseBudgets(Check):
    """Lighthouse's performance score and lab metrics (LCP, CLS, TBT, FCP, Speed Index,
    total bytes) for each [budgets.web] page of the URL, within its budgets. Lighthouse or
    Chromium missing: "not run" with the reason."""

    id = "performance.lighthouse"
    title = "Lighthouse performance and Core Web Vitals within [budgets.web]"
    category = Category.PERFORMANCE
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    kind = "live"
    exclusive = True
    remedy = "Make the page lighter or faster (images, scripts, layout shifts), or set budgets the page can hold."

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.url is not None
        budgets = ctx.spec.budgets.web
        if budgets is None:
            return skipped("no [budgets.web]")
        env = {**os.environ, **ctx.environ}
        lighthouse = find_lighthouse(env, ctx.root)
        chromium = find_chromium(env)
        missing = [
            what
            for what, found in (
                ("Lighthouse (npm i -g lighthouse@12.2.3, or TOWER_LIGHTHOUSE)", lighthouse),
                ("Chromium (apt-get install chromium, or CHROME_PATH)", chromium),
            )
            if not found
        ]
        if missing or lighthouse is None or chromium is None:
            return warned(
                "not run: " + " and ".join(missing) + " not found",
                Fix("Install Lighthouse and Chromium", "", "npm i -g lighthouse@12.2.3"),
                not_run=missing,
            )
        env["CHROME_PATH"] = chromium
        results: list[PageResult] = []
        for page in budgets.pages:
            url = ctx.url.rstrip("/") + page
            try:
                report = await run_lighthouse(
                    command(lighthouse, url, budgets), env, budgets.timeout
                )
            except NotRun as exc:
                return warned(f"not run: {page}: {exc}", not_run=[str(exc)])
            results.append(read_report(page, report))
        broken = [line for r in results for line in over_budget(r, budgets)]
        summary = "; ".join(r.describe() for r in results)
        version = next((r.version for r in results if r.version), "")
        data: dict[str, Any] = {
            "pages": [r.to_dict() for r in results],
            "lighthouse": version,
            "form_factor": budgets.form_factor,
        }
        if broken:
            return failed(
                f"{len(broken)} budget{'s' if len(broken) != 1 else ''} broken: "
                + "; ".join(broken),
                Fix("Bring the page within its budget", "tower.toml", "[budgets.web]"),
                details=[f"measured {summary} (Lighthouse {version}, {budgets.form_factor})"],
                **data,
            )
        return passed(f"{summary} (Lighthouse {version}, {budgets.form_factor})", **data)
