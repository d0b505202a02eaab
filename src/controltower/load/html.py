"""A self-contained HTML report: inline SVG charts drawn here, no script, no CDN."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

__all__ = ["Series", "line_chart", "render_html"]

_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 720, 270, 64, 40, 30, 16


class Series(NamedTuple):
    label: str
    colour: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def _nice_step(span: float, count: int) -> float:
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw))


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    if top <= 0:
        return [0.0, 1.0]
    step = _nice_step(top, count)
    return [step * index for index in range(count + 2) if step * (index - 1) < top]


def time_ticks(first: float, last: float) -> list[tuple[float, str]]:
    """Ticks every 1, 2, 5, 10, 15, 30 s or whole minutes: no more than nine."""
    span = max(last - first, 1.0)
    step = next(
        (s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / s <= 8), 7200
    )
    start = math.ceil(first / step) * step
    ticks = []
    value = float(start)
    while value <= last + 1e-9:
        label = f"{value:g}s" if step < 60 else f"{value / 60:g}m"
        ticks.append((value, label))
        value += step
    return ticks


def line_chart(
    series: Sequence[Series],
    *,
    y_label: str,
    x_label: str,
    y_format: str = "{:g}",
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """An SVG line chart of ``series`` with a legend, grid lines and labelled axes."""
    points = [point for item in series for point in item.points]
    if not points:
        return '<p class="empty">no data</p>'
    x_min = min(x for x, _ in points)
    x_max = max(x for x, _ in points)
    x_span = (x_max - x_min) or 1.0
    ticks = _nice_ticks(max(y for _, y in points))
    y_max = ticks[-1] or 1.0
    inner_w, inner_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def sx(x: float) -> float:
        return _PAD_L + (x - x_min) / x_span * inner_w

    def sy(y: float) -> float:
        return _PAD_T + inner_h - y / y_max * inner_h

    parts = [f'<svg viewBox="0 0 {_W} {_H}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for tick in ticks:
        y = sy(tick)
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{html.escape(y_format.format(tick))}</text>"
        )
    for x, label in x_ticks or [(x_min, f"{x_min:g}"), (x_max, f"{x_max:g}")]:
        parts.append(
            f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{_PAD_T + inner_h}" '
            f'y2="{_PAD_T + inner_h + 4}" class="axis"/>'
            f'<text x="{sx(x):.1f}" y="{_H - _PAD_B + 16}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    parts.append(
        f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{_PAD_T + inner_h}" '
        f'y2="{_PAD_T + inner_h}" class="axis"/>'
        f'<text x="{_PAD_L + inner_w / 2}" y="{_H - 4}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text x="12" y="{_PAD_T + inner_h / 2}" transform="rotate(-90 12 {_PAD_T + inner_h / 2})" '
        f'text-anchor="middle">{html.escape(y_label)}</text>'
    )
    legend_x = _PAD_L
    for item in series:
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in item.points)
        marker = (
            f'<circle cx="{sx(item.points[0][0]):.1f}" cy="{sy(item.points[0][1]):.1f}" r="3" '
            f'fill="{item.colour}"/>'
            if len(item.points) == 1
            else ""
        )
        parts.append(
            f'<polyline fill="none" stroke="{item.colour}" stroke-width="2"{dash} points="{path}">'
            f"<title>{html.escape(item.label)}</title></polyline>{marker}"
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{_PAD_T - 14}" y2="{_PAD_T - 14}" '
            f'stroke="{item.colour}" stroke-width="3"{dash}/>'
            f'<text x="{legend_x + 23}" y="{_PAD_T - 10}">{html.escape(item.label)}</text>'
        )
        legend_x += 34 + 7 * len(item.label)
    parts.append("</svg>")
    return "".join(parts)


def _ms(seconds: Any) -> str:
    value = float(seconds) * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


_NINES_TICKS = ((0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"))


def distribution_chart(spectrum: Sequence[tuple[float, float]]) -> str:
    """Latency by percentile on a "nines" axis (0, 90, 99, 99.9 ...), max at the far right."""
    points = [(p, value) for p, value in spectrum if p < 100]
    if not points:
        return '<p class="empty">no data</p>'
    nines = [(-math.log10(1 - p / 100), value * 1000) for p, value in points]
    last = nines[-1][0]
    ticks = [(x, label) for x, label in _NINES_TICKS if x <= last + 1e-9]
    top = [value for p, value in spectrum if p >= 100]
    if top:
        nines.append((last + 0.35, top[0] * 1000))
        ticks.append((last + 0.35, "max"))
    return line_chart(
        [Series("latency", "#5f3dc4", nines)],
        y_label="latency (ms)",
        x_label="percentile",
        x_ticks=ticks,
    )


def _when(text: str) -> str:
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return text


def render_html(report: dict[str, Any]) -> str:
    """The report (as ``LoadOutcome.to_dict`` gives it) as one HTML page."""
    timeline = report["timeline"]
    plan = report["plan"]
    seconds = [row["second"] + 1 for row in timeline]
    ticks = time_ticks(min(seconds), max(seconds)) if seconds else None
    latency = line_chart(
        [
            Series(name, colour, [(row["second"] + 1, row[name] * 1000) for row in timeline])
            for name, colour in (
                ("p50", "#2b8a3e"),
                ("p95", "#e67700"),
                ("p99", "#c92a2a"),
                ("max", "#868e96"),
            )
        ],
        y_label="latency (ms)",
        x_label="end of each second of the run",
        x_ticks=ticks,
    )
    flows = [
        (row["second"] + 1, row["requests"]) for row in timeline if "requests" in row
    ]  # per second, every request of every flow step
    throughput_series = [
        Series("requests/s", "#1971c2", flows),
        Series("errors/s", "#c92a2a", [(row["second"] + 1, row["errors"]) for row in timeline]),
    ]
    if plan.get("model") == "open" and timeline and all("scheduled" in row for row in timeline):
        throughput_series.append(
            Series(
                "scheduled arrivals/s",
                "#495057",
                [(row["second"] + 1, row["scheduled"]) for row in timeline],
                dashed=True,
            )
        )
    throughput = line_chart(
        throughput_series,
        y_label="per second",
        x_label="end of each second of the run",
        x_ticks=ticks,
    )
    distribution = distribution_chart(report["distribution"])
    summary = report["summary"]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{stats['requests']:,}</td><td>{stats['rps']:,.1f}</td>"
        f"<td>{stats['error_rate']:.2%}</td>"
        + "".join(
            f"<td>{_ms(stats[key])}</td>" for key in ("p50", "p90", "p95", "p99", "p99_9", "max")
        )
        + "</tr>"
        for name, stats in [("all", summary), *report["scenarios"].items()]
    )
    kinds = summary["errors_by_kind"]
    errors = (
        "<p>errors by kind: "
        + ", ".join(f"{html.escape(kind)} {count:,}" for kind, count in kinds.items())
        + "</p>"
        if kinds
        else ""
    )
    budgets = "".join(
        f'<li class="{"ok" if item["ok"] else "fail"}">{"pass" if item["ok"] else "FAIL"} '
        f"[{html.escape(item['scope'])}] {html.escape(item['message'])}</li>"
        for item in report["budgets"]
    )
    notes = [html.escape(text) for text in report.get("notes", [])]
    comparison = report.get("comparison")
    if comparison:
        notes.append(html.escape(comparison["message"]))
    generator = report["generator"]
    generator_line = (
        f"generator: worker CPU up to {generator['worker_cpu_max']:.0%} of a core"
        + (
            f", sends late by {_ms(generator['send_lag_p50'])} (p50), "
            f"{_ms(generator['send_lag_p99'])} (p99), {_ms(generator['send_lag_max'])} (max)"
            if plan.get("model") == "open"
            else ""
        )
        + (
            "; bound: the figures describe the generator as much as the target"
            if generator["bound"]
            else "; not the bottleneck"
        )
    )
    title = f"tower load: {plan['url']}"
    verdict = "passed" if report["passed"] else "failed"
    if report.get("interrupted"):
        verdict = f"interrupted, {verdict} so far"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2rem auto; max-width: 780px; color: #212529; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ padding: 4px 8px; border-bottom: 1px solid #dee2e6; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
svg {{ width: 100%; height: auto; }} svg text {{ font-size: 11px; fill: #495057; }}
.grid {{ stroke: #e9ecef; }} .axis {{ stroke: #adb5bd; }} .ok {{ color: #2b8a3e; }} .fail {{ color: #c92a2a; font-weight: 600; }}
.muted {{ color: #868e96; }} h2 {{ margin-top: 2rem; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(report["description"])}.<br>Started {html.escape(_when(report["started_at"]))}, ran {report["elapsed"]:.1f}s. Verdict:
<strong class="{"ok" if report["passed"] else "fail"}">{verdict}</strong></p>
{"<ul>" + "".join(f"<li>{note}</li>" for note in notes) + "</ul>" if notes else ""}
<h2>Budgets</h2><ul>{budgets or "<li>no budgets set</li>"}</ul>
<h2>Summary</h2>
<table><tr><th>scenario</th><th>requests</th><th>req/s</th><th>errors</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>{rows}</table>
{errors}<p class="muted">{html.escape(generator_line)}</p>
<h2>Latency over time</h2>{latency}
<h2>Latency distribution</h2>{distribution}
<h2>Throughput</h2>{throughput}
</body></html>
"""
