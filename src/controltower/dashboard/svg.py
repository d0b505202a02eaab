"""Charts as inline SVG: sparklines, line charts, uptime bars, bar charts and badges.

Pure functions from numbers to markup. They use presentation attributes and CSS
classes only (no inline style), so the dashboard's CSP needs no 'unsafe-inline'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from controltower.units import format_duration


def _points(
    values: Sequence[float | None], width: float, height: float, top: float | None = None
) -> list[tuple[float, float] | None]:
    real = [v for v in values if v is not None]
    if not real:
        return [None for _ in values]
    high = top if top is not None else max(real)
    high = high if high > 0 else 1.0
    step = width / max(1, len(values) - 1)
    out: list[tuple[float, float] | None] = []
    for index, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        y = height - (min(value, high) / high) * (height - 2) - 1
        out.append((round(index * step, 2), round(y, 2)))
    return out


def _path(points: list[tuple[float, float] | None]) -> str:
    parts: list[str] = []
    pen_up = True
    for point in points:
        if point is None:
            pen_up = True
            continue
        parts.append(f"{'M' if pen_up else 'L'}{point[0]},{point[1]}")
        pen_up = False
    return " ".join(parts)


def sparkline(
    values: Sequence[float | None], *, width: int = 120, height: int = 24, label: str = ""
) -> str:
    """A small trend line; gaps (None) break the line."""
    path = _path(_points(values, width, height))
    title = f"<title>{escape(label)}</title>" if label else ""
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label or "trend")}">{title}'
        f'<path d="{path}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>'
    )


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str = "series-a"


def line_chart(
    series: Sequence[Series],
    labels: Sequence[str],
    *,
    width: int = 640,
    height: int = 180,
    unit: str = "s",
    label: str = "",
) -> str:
    """A line chart with a y axis in ``unit`` ("s" formats as durations) and x labels."""
    left, bottom = 56, 20
    plot_w, plot_h = width - left - 8, height - bottom - 8
    values = [v for s in series for v in s.values if v is not None]
    top = max(values) if values else 1.0
    top = top * 1.1 if top > 0 else 1.0
    grid = []
    for fraction in (0.0, 0.5, 1.0):
        y = 8 + plot_h - fraction * plot_h
        value = top * fraction
        text = format_duration(value) if unit == "s" else f"{value:.3g}{unit}"
        grid.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{escape(text)}</text>'
        )
    lines = []
    for item in series:
        points = _points(item.values, plot_w, plot_h, top)
        shifted = [None if p is None else (p[0] + left, p[1] + 8) for p in points]
        lines.append(
            f'<path d="{_path(shifted)}" class="{item.css}" fill="none" stroke-width="1.5">'
            f"<title>{escape(item.name)}</title></path>"
        )
    ticks = []
    if labels:
        step = max(1, len(labels) // 6)
        for index in range(0, len(labels), step):
            x = left + index * plot_w / max(1, len(labels) - 1)
            ticks.append(
                f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle" '
                f'class="axis">{escape(labels[index])}</text>'
            )
    legend = " ".join(f'<tspan class="{s.css}-text">■ {escape(s.name)}</tspan>' for s in series)
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height + 14}" role="img" '
        f'aria-label="{escape(label or "chart")}">'
        + "".join(grid)
        + "".join(lines)
        + "".join(ticks)
        + f'<text x="{left}" y="{height + 12}" class="axis">{legend}</text></svg>'
    )


@dataclass(frozen=True)
class DayBar:
    """One day of uptime: ``uptime`` is a fraction, None when nothing was measured."""

    day: str
    uptime: float | None
    incidents: int = 0


def uptime_class(uptime: float | None) -> str:
    if uptime is None:
        return "bar-none"
    if uptime >= 0.999:
        return "bar-up"
    if uptime >= 0.99:
        return "bar-degraded"
    return "bar-down"


def uptime_bars(days: Sequence[DayBar], *, width: int = 640, height: int = 34) -> str:
    """The status-page strip: one bar per day, coloured by that day's uptime."""
    count = max(1, len(days))
    gap = 2
    bar = max(1.0, (width - gap * (count - 1)) / count)
    rects = []
    for index, day in enumerate(days):
        x = index * (bar + gap)
        shown = "no data" if day.uptime is None else f"{day.uptime * 100:.2f}%"
        extra = (
            f", {day.incidents} incident{'s' if day.incidents != 1 else ''}"
            if day.incidents
            else ""
        )
        rects.append(
            f'<rect x="{x:.1f}" y="0" width="{bar:.1f}" height="{height}" rx="1.5" '
            f'class="{uptime_class(day.uptime)}"><title>{escape(day.day)}: {shown}{extra}</title></rect>'
        )
    return (
        f'<svg class="uptime" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="uptime per day">' + "".join(rects) + "</svg>"
    )


def bar_chart(
    values: Sequence[float],
    labels: Sequence[str],
    *,
    width: int = 320,
    height: int = 120,
    css: str = "series-a",
    label: str = "",
) -> str:
    """Vertical bars with labels under them (DORA figures per week, say)."""
    count = max(1, len(values))
    top = max(values) if values and max(values) > 0 else 1.0
    slot = width / count
    bars = []
    for index, value in enumerate(values):
        h = (value / top) * (height - 24)
        x = index * slot + slot * 0.15
        bars.append(
            f'<rect x="{x:.1f}" y="{height - 16 - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'class="{css}-fill"><title>{escape(labels[index] if index < len(labels) else "")}: '
            f"{value:g}</title></rect>"
        )
        if index < len(labels):
            bars.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - 4}" text-anchor="middle" '
                f'class="axis">{escape(labels[index])}</text>'
            )
    return (
        f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label or "bars")}">' + "".join(bars) + "</svg>"
    )


_BADGE_COLOURS = {
    "green": "#2e9e44",
    "yellow": "#c99a06",
    "orange": "#d9731a",
    "red": "#d1372e",
    "grey": "#6b7280",
    "blue": "#2f6fd6",
}


def _text_width(text: str) -> int:
    return int(sum(7.2 if c.isupper() or c in "mwMW%" else 6.2 for c in text)) + 10


def badge(label: str, message: str, colour: str = "green") -> str:
    """A shields.io-style SVG badge (standalone document, for READMEs)."""
    fill = _BADGE_COLOURS.get(colour, colour if colour.startswith("#") else "#6b7280")
    left, right = _text_width(label), _text_width(message)
    total = left + right
    label_e, message_e = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{label_e}: {message_e}"><title>{label_e}: {message_e}</title>'
        f'<rect width="{left}" height="20" rx="3" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" rx="3" fill="{fill}"/>'
        f'<rect x="{left}" width="4" height="20" fill="{fill}"/>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        f'font-size="11"><text x="{left / 2:.1f}" y="14">{label_e}</text>'
        f'<text x="{left + right / 2:.1f}" y="14">{message_e}</text></g></svg>'
    )
