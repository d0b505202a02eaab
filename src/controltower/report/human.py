"""Reports for people: the terminal summary and Markdown (the HTML page is in ``html``)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controltower.checks.model import Finding, Status
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
        if finding.details and finding.status is not Status.PASS:
            message += "".join(f"\n  - {escape(detail)}" for detail in finding.details)
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
        if verdict.blocked_by and not verdict.failing:
            failing = f"  blocked by gate {', '.join(map(str, verdict.blocked_by))}"
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
            f"| {gate} | {verdict.name} | {'GO' if verdict.passed else 'NO-GO'} | {', '.join(verdict.failing) or ', '.join(f'gate {b}' for b in verdict.blocked_by)} |"
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
