"""Reports for people: the terminal summary, Markdown and a self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controltower.checks.model import Category, Finding, Status
from controltower.checks.runner import CheckRun

ICONS = {
    Status.PASS: ("✓", "green"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✗", "red"),
    Status.ERROR: ("E", "red"),
    Status.ADVICE: ("i", "cyan"),
    Status.WAIVED: ("w", "magenta"),
    Status.SKIP: ("-", "dim"),
}
ORDER = [
    Status.FAIL,
    Status.ERROR,
    Status.WARN,
    Status.ADVICE,
    Status.WAIVED,
    Status.PASS,
    Status.SKIP,
]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def problems(run: CheckRun) -> list[Finding]:
    return sorted(
        (
            f
            for f in run.findings
            if f.status in (Status.FAIL, Status.ERROR, Status.WARN, Status.ADVICE)
        ),
        key=lambda f: (ORDER.index(f.status), int(f.gate), f.id),
    )


def render_text(run: CheckRun, console: Console, *, verbose: bool = False) -> None:
    where = f" [{run.environment}]" if run.environment else ""
    head = f"{run.service}{where} on {run.target}" + (
        f" at {run.url}" if run.url else " (static only)"
    )
    console.print(f"[bold]tower check[/bold] {escape(head)}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("", "check", "gate", "category", "result"):
        table.add_column(column)
    shown = run.findings if verbose else [f for f in run.findings if f.status is not Status.SKIP]
    for finding in sorted(shown, key=lambda f: (int(f.gate), ORDER.index(f.status), f.id)):
        icon, style = ICONS[finding.status]
        message = escape(finding.message)
        if finding.status is Status.ADVICE:
            message += f" [dim](advice: {escape(finding.advice_reason)})[/dim]"
        table.add_row(
            f"[{style}]{icon}[/{style}]",
            finding.id,
            str(int(finding.gate)),
            finding.category.value,
            message,
        )
    console.print(table)
    fixes = [
        f
        for f in problems(run)
        if f.fix is not None and f.status in (Status.FAIL, Status.ERROR, Status.WARN)
    ]
    if fixes:
        console.print("\n[bold]Fixes[/bold]")
        for finding in fixes:
            assert finding.fix is not None
            where = (
                f" ({finding.location or finding.fix.file})"
                if (finding.location or finding.fix.file)
                else ""
            )
            hadolint = f" [dim]hadolint {finding.hadolint}[/dim]" if finding.hadolint else ""
            console.print(
                f"[bold]{finding.id}[/bold]{escape(where)}{hadolint}: {escape(finding.fix.summary)}",
                soft_wrap=True,
            )
            if finding.fix.lines:
                for line in finding.fix.lines.splitlines():
                    console.print(
                        f"    [green]{escape(line)}[/green]", highlight=False, soft_wrap=True
                    )
    console.print()
    categories = "  ".join(
        f"{name} {_pct(value)}" for name, value in run.score.categories.items() if value is not None
    )
    console.print(f"[bold]Readiness {_pct(run.score.overall)}[/bold]   {categories}")
    for gate, verdict in run.gates.items():
        mark = "[green]GO[/green]" if verdict.passed else "[red]NO-GO[/red]"
        failing = f"  failing: {', '.join(verdict.failing)}" if verdict.failing else ""
        console.print(f"gate {gate} {verdict.name}: {mark}{escape(failing)}", soft_wrap=True)


def render_markdown(run: CheckRun) -> str:
    lines = [
        f"# Readiness of {run.service}" + (f" ({run.environment})" if run.environment else ""),
        "",
    ]
    lines += [
        f"Overall readiness **{_pct(run.score.overall)}** on `{run.target}`"
        + (f", {run.url}" if run.url else ""),
        "",
    ]
    lines += ["| gate | name | verdict | failing |", "| --- | --- | --- | --- |"]
    for gate, verdict in run.gates.items():
        lines.append(
            f"| {gate} | {verdict.name} | {'GO' if verdict.passed else 'NO-GO'} | {', '.join(verdict.failing)} |"
        )
    lines += ["", "| category | readiness |", "| --- | --- |"]
    lines += [f"| {name} | {_pct(value)} |" for name, value in run.score.categories.items()]
    lines += [
        "",
        "## Findings",
        "",
        "| status | check | gate | message |",
        "| --- | --- | --- | --- |",
    ]
    for finding in sorted(run.findings, key=lambda f: (ORDER.index(f.status), int(f.gate), f.id)):
        if finding.status is Status.SKIP:
            continue
        message = finding.message.replace("|", "\\|")
        if finding.advice_reason:
            message += f" (advice: {finding.advice_reason})"
        lines.append(
            f"| {finding.status.value} | `{finding.id}` | {int(finding.gate)} | {message} |"
        )
    fixes = [f for f in problems(run) if f.fix is not None]
    if fixes:
        lines += ["", "## Fixes", ""]
        for finding in fixes:
            assert finding.fix is not None
            where = f" in `{finding.fix.file}`" if finding.fix.file else ""
            lines += [f"### `{finding.id}`{where}", "", finding.fix.summary, ""]
            if finding.fix.lines:
                lines += ["```", finding.fix.lines, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}
main{max-width:980px;margin:0 auto;padding:32px 20px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 12px}
.meta{color:#57606a}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:20px 0}
.card{background:#fff;border:1px solid #d8dee4;border-radius:10px;padding:14px 18px;min-width:150px}
.card b{display:block;font-size:28px}.go{color:#1a7f37}.nogo{color:#cf222e}
.bar{background:#eaeef2;border-radius:6px;height:10px;overflow:hidden}.bar i{display:block;height:10px;background:#2da44e}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d8dee4;border-radius:10px;overflow:hidden}
td,th{padding:8px 12px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}th{background:#f6f8fa}
details{background:#fff;border:1px solid #d8dee4;border-radius:10px;margin:8px 0;padding:10px 14px}
summary{cursor:pointer;font-weight:600}code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#0d1117;color:#e6edf3;padding:12px;border-radius:8px;overflow:auto}
.tag{display:inline-block;border-radius:999px;padding:0 8px;font-size:12px;font-weight:600;margin-right:6px}
.fail,.error{background:#ffebe9;color:#cf222e}.warn{background:#fff8c5;color:#9a6700}.advice{background:#ddf4ff;color:#0969da}
.pass{background:#dafbe1;color:#1a7f37}.waived{background:#fbefff;color:#8250df}.skip{background:#eaeef2;color:#57606a}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _finding_html(finding: Finding) -> str:
    parts = [
        f"<details{' open' if finding.status in (Status.FAIL, Status.ERROR) else ''}><summary>"
        f'<span class="tag {finding.status.value}">{_e(finding.status.value)}</span>{_e(finding.id)} '
        f'<span class="meta">· gate {int(finding.gate)} · {_e(finding.severity.value)}</span></summary>',
        f"<p>{_e(finding.title)}: {_e(finding.message)}</p>",
    ]
    if finding.advice_reason:
        parts.append(f"<p><b>Advice, not a failure:</b> {_e(finding.advice_reason)}</p>")
    if finding.location:
        parts.append(f"<p>At <code>{_e(finding.location)}</code></p>")
    if finding.hadolint:
        parts.append(f"<p>hadolint {_e(finding.hadolint)}</p>")
    if finding.details:
        parts.append(
            "<ul>" + "".join(f"<li><code>{_e(d)}</code></li>" for d in finding.details) + "</ul>"
        )
    if finding.fix:
        where = f" in <code>{_e(finding.fix.file)}</code>" if finding.fix.file else ""
        parts.append(f"<p><b>Fix{where}:</b> {_e(finding.fix.summary)}</p>")
        if finding.fix.lines:
            parts.append(f"<pre>{_e(finding.fix.lines)}</pre>")
    parts.append("</details>")
    return "\n".join(parts)


def _group(findings: Iterable[Finding], category: Category) -> list[Finding]:
    return sorted(
        (f for f in findings if f.category is category),
        key=lambda f: (ORDER.index(f.status), int(f.gate), f.id),
    )


def render_html(run: CheckRun) -> str:
    cards = [f'<div class="card">Readiness<b>{_pct(run.score.overall)}</b></div>']
    for gate, verdict in run.gates.items():
        klass, word = ("go", "GO") if verdict.passed else ("nogo", "NO-GO")
        cards.append(
            f'<div class="card">Gate {gate}: {_e(verdict.name)}<b class="{klass}">{word}</b></div>'
        )
    rows = []
    for name, value in run.score.categories.items():
        width = 0 if value is None else value
        rows.append(
            f'<tr><td>{_e(name)}</td><td style="width:60%"><div class="bar"><i style="width:{width:.0f}%"></i></div></td><td>{_pct(value)}</td></tr>'
        )
    sections = []
    for category in Category:
        group = [f for f in _group(run.findings, category) if f.status is not Status.SKIP]
        if group:
            sections.append(
                f"<h2>{_e(category.value.title())}</h2>"
                + "\n".join(_finding_html(f) for f in group)
            )
    skipped = [f for f in run.findings if f.status is Status.SKIP]
    if skipped:
        items = "".join(f"<li><code>{_e(f.id)}</code>: {_e(f.message)}</li>" for f in skipped)
        sections.append(
            f"<h2>Not applicable</h2><details><summary>{len(skipped)} checks skipped</summary><ul>{items}</ul></details>"
        )
    where = f" ({_e(run.environment)})" if run.environment else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Readiness of {_e(run.service)}</title><style>{CSS}</style></head>
<body><main>
<h1>Readiness of {_e(run.service)}{where}</h1>
<div class="meta">target {_e(run.target)}{" · " + _e(run.url) if run.url else " · static checks only"} · {_e(run.started_at.strftime("%Y-%m-%d %H:%M UTC"))} · run {_e(run.id[:12])}</div>
<div class="cards">{"".join(cards)}</div>
<h2>By category</h2><table>{"".join(rows)}</table>
{"".join(sections)}
</main></body></html>
"""
