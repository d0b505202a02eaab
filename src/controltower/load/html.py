"""A self-contained HTML report: inline SVG charts drawn here, no script, no CDN."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["line_chart", "render_html"]

Series = tuple[str, str, Sequence[tuple[float, float]]]
_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 720, 260, 64, 40, 16, 16


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * index for index in range(count + 2) if step * (index - 1) < top]


def line_chart(
    series: Sequence[Series],
    *,
    y_label: str,
    x_label: str,
    y_format: str = "{:g}",
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """An SVG line chart of ``series`` (label, colour, points)."""
    points = [point for _, _, values in series for point in values]
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
            f'<text x="{sx(x):.1f}" y="{_H - _PAD_B + 16}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    parts.append(
        f'<text x="{_PAD_L + inner_w / 2}" y="{_H - 4}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text x="12" y="{_PAD_T + inner_h / 2}" transform="rotate(-90 12 {_PAD_T + inner_h / 2})" '
        f'text-anchor="middle">{html.escape(y_label)}</text>'
    )
    for index, (label, colour, values) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
            f"<title>{html.escape(label)}</title></polyline>"
            f'<text x="{_PAD_L + 8 + index * 110}" y="{_PAD_T + 12}" fill="{colour}">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _nines(percentile: float) -> float:
    return -math.log10(max(1e-6, 1 - percentile / 100))


def _ms(seconds: Any) -> str:
    return f"{float(seconds) * 1000:.1f} ms"


def render_html(report: dict[str, Any]) -> str:
    """The report (as ``LoadOutcome.to_dict`` gives it) as one HTML page."""
    timeline = report["timeline"]
    latency = line_chart(
        [
            (name, colour, [(row["second"] + 1, row[name] * 1000) for row in timeline])
            for name, colour in (("p50", "#2b8a3e"), ("p95", "#e67700"), ("p99", "#c92a2a"))
        ]
        + [("max", "#868e96", [(row["second"] + 1, row["max"] * 1000) for row in timeline])],
        y_label="latency (ms)",
        x_label="seconds since start",
    )
    throughput = line_chart(
        [
            ("requests/s", "#1971c2", [(row["second"] + 1, row["requests"]) for row in timeline]),
            ("errors/s", "#c92a2a", [(row["second"] + 1, row["errors"]) for row in timeline]),
        ],
        y_label="per second",
        x_label="seconds since start",
    )
    spectrum = report["distribution"]
    distribution = line_chart(
        [("latency", "#5f3dc4", [(_nines(p), value * 1000) for p, value in spectrum])],
        y_label="latency (ms)",
        x_label="percentile",
        x_ticks=[(_nines(p), f"{p:g}%") for p in (0, 90, 99, 99.9, 99.99) if p <= spectrum[-1][0]]
        if spectrum
        else None,
    )
    summary = report["summary"]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{stats['requests']}</td><td>{stats['rps']:.1f}</td>"
        f"<td>{stats['error_rate']:.3%}</td>"
        + "".join(
            f"<td>{_ms(stats[key])}</td>" for key in ("p50", "p90", "p95", "p99", "p99_9", "max")
        )
        + "</tr>"
        for name, stats in [("all", summary), *report["scenarios"].items()]
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
    plan = report["plan"]
    title = f"tower load: {plan['url']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2rem auto; max-width: 780px; color: #212529; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ padding: 4px 8px; border-bottom: 1px solid #dee2e6; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
svg {{ width: 100%; height: auto; }} svg text {{ font-size: 11px; fill: #495057; }}
.grid {{ stroke: #e9ecef; }} .ok {{ color: #2b8a3e; }} .fail {{ color: #c92a2a; font-weight: 600; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(report["description"])}; started {html.escape(report["started_at"])}; verdict:
<strong class="{"ok" if report["passed"] else "fail"}">{"passed" if report["passed"] else "failed"}</strong></p>
<ul>{"".join(f"<li>{note}</li>" for note in notes)}</ul>
<h2>Budgets</h2><ul>{budgets or "<li>no budgets set</li>"}</ul>
<h2>Summary</h2>
<table><tr><th>scenario</th><th>requests</th><th>req/s</th><th>errors</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>{rows}</table>
<h2>Latency over time</h2>{latency}
<h2>Latency distribution</h2>{distribution}
<h2>Throughput</h2>{throughput}
</body></html>
"""
