"""Renderers of a check run: terminal, JSON, JUnit, SARIF, Markdown, HTML."""

from __future__ import annotations

from enum import StrEnum

from controltower.checks.runner import CheckRun
from controltower.report.html import render_html
from controltower.report.human import render_markdown, render_text
from controltower.report.machine import to_json, to_junit, to_sarif


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"
    SARIF = "sarif"
    MARKDOWN = "markdown"
    HTML = "html"


def render(run: CheckRun, format: ReportFormat) -> str:
    """The report as text, for every format but the terminal one."""
    renderers = {
        ReportFormat.JSON: to_json,
        ReportFormat.JUNIT: to_junit,
        ReportFormat.SARIF: to_sarif,
        ReportFormat.MARKDOWN: render_markdown,
        ReportFormat.HTML: render_html,
    }
    if format not in renderers:
        raise ValueError(f"{format} is rendered to a console, not a string")
    return renderers[format](run)


__all__ = [
    "ReportFormat",
    "render",
    "render_html",
    "render_markdown",
    "render_text",
    "to_json",
    "to_junit",
    "to_sarif",
]
