"""The terminal summary of a run and its live progress line."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from controltower.load.runner import Progress

__all__ = ["progress_line", "summary_renderable"]


def _ms(seconds: float) -> str:
    if seconds < 0.1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds * 1000:.0f}ms" if seconds < 10 else f"{seconds:.1f}s"


def progress_line(progress: Progress) -> Text:
    line = Text()
    line.append(f"{progress.elapsed:5.1f}s/{progress.duration:g}s  ", style="bold")
    line.append(f"{progress.rate:,.0f} req/s  ")
    line.append(f"p50 {_ms(progress.p50)}  p95 {_ms(progress.p95)}  p99 {_ms(progress.p99)}  ")
    line.append(
        f"{progress.requests:,} requests, {progress.errors:,} errors",
        style="red" if progress.errors else "",
    )
    if progress.lost:
        line.append(f"  lost: {', '.join(progress.lost)}", style="red")
    return line


def summary_renderable(report: dict[str, Any]) -> RenderableType:
    """A table per scenario, then budgets, notes and the comparison."""
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    for column in ("scenario", "requests", "req/s", "errors"):
        table.add_column(column, justify="left" if column == "scenario" else "right", no_wrap=True)
    for column in ("p50", "p90", "p95", "p99", "p99.9", "max"):
        table.add_column(column, justify="right", no_wrap=True)
    rows = [("all", report["summary"]), *report["scenarios"].items()]
    if len(rows) == 2:
        rows = rows[:1]
    for name, stats in rows:
        table.add_row(
            name,
            f"{stats['requests']:,}",
            f"{stats['rps']:,.1f}",
            f"{stats['error_rate']:.2%}",
            *(_ms(stats[key]) for key in ("p50", "p90", "p95", "p99", "p99_9", "max")),
        )
    parts: list[RenderableType] = [table]
    kinds = report["summary"]["errors_by_kind"]
    if kinds:
        parts.append(
            Text(
                "errors: " + ", ".join(f"{kind} {count}" for kind, count in kinds.items()),
                style="red",
            )
        )
    for item in report["budgets"]:
        mark = "pass" if item["ok"] else "FAIL"
        parts.append(
            Text(
                f"{mark}  [{item['scope']}] {item['message']}",
                style="green" if item["ok"] else "red",
            )
        )
    for note in report["notes"]:
        parts.append(Text(note, style="yellow"))
    comparison = report.get("comparison")
    if comparison:
        style = {"slower": "red", "faster": "green"}.get(comparison["verdict"], "")
        parts.append(Text(comparison["message"], style=style))
    verdict = "budgets met" if report["passed"] else "budgets failed"
    if not report["budgets"]:
        verdict = "no budgets set" if report["passed"] else "run failed"
    if report.get("interrupted"):
        verdict = f"interrupted: {verdict} so far"
    parts.append(Text(verdict, style="bold green" if report["passed"] else "bold red"))
    return Group(*parts)
