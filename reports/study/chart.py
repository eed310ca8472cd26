"""A small line chart as inline SVG: one ``<polyline>`` per series, axes with ticks and labels, a
legend; linear or log₁₀ y axis. Every string is escaped with :func:`html.escape`; the drawing has a
``viewBox`` and no script, style sheet, font file or reference of its own (no ``url(…)``), so it
can sit in a self-contained page.

A point whose y is not a finite number (or, on a log axis, not > 0) is left out; the series'
line is broken there (a new ``<polyline>`` segment would count as another series, so the line
simply stops: a diverging run is drawn up to its last finite value). Each polyline carries its
series' name in ``data-series``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
WIDTH, HEIGHT = 520, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 30, 44        # the plot area's margins (legend on the right)
FONT_PX = 11


@dataclass(frozen=True)
class Series:
    """``points``: (x, y) pairs; y may be None or non-finite (left out). ``dash``: an SVG
    ``stroke-dasharray`` ("" for solid); ``opacity`` lets a wide line show through narrower ones
    drawn on top of it (four backends that agree draw on top of each other)."""

    name: str
    points: list[tuple[float, float | None]]
    colour: str
    dash: str = ""
    width: float = 2.0
    opacity: float = 1.0


def finite_points(series: Series, log_y: bool) -> list[tuple[float, float]]:
    """The points that can be drawn: y finite (and > 0 on a log axis)."""
    out = []
    for x, y in series.points:
        if isinstance(y, (int, float)) and math.isfinite(y) and (y > 0 or not log_y):
            out.append((float(x), float(y)))
    return out


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten from ⌊log₁₀ low⌋ to ⌈log₁₀ high⌉, every k-th so that at most 8 remain."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    last = max(last, first + 1)
    step = max(1, math.ceil((last - first) / 7))
    return [10.0 ** e for e in range(first, last + 1, step)]


def linear_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round ticks (1, 2 or 5 × 10^k apart) covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value < high + step / 2:
        ticks.append(round(value, 12))
        value += step
    return ticks


def tick_label(value: float, log_y: bool) -> str:
    if log_y:
        return f"1e{round(math.log10(value))}".replace("-", "−")
    return f"{value:g}".replace("-", "−")


def line_chart(series: list[Series], *, title: str, x_label: str, y_label: str, log_y: bool = False,
               y_range: tuple[float, float] | None = None, x_ticks: list[float] | None = None) -> str:
    """The SVG markup. ``y_range`` fixes the y axis (so charts side by side share a scale);
    otherwise it spans every drawable point. ``x_ticks`` default to the series' x values when
    there are at most 12 of them, else round linear ticks."""
    drawable = [finite_points(s, log_y) for s in series]
    xs = sorted({x for s in series for x, _ in s.points})
    ys = [y for points in drawable for _, y in points]
    if y_range is None:
        y_range = (min(ys), max(ys)) if ys else (1.0, 10.0)
    if log_y:
        y_ticks = log_ticks(*y_range)
    else:
        y_ticks = linear_ticks(min(0.0, y_range[0]), y_range[1])
    y_low, y_high = y_ticks[0], y_ticks[-1]
    if x_ticks is None:
        x_ticks = xs if len(xs) <= 12 else linear_ticks(xs[0], xs[-1])
    x_low, x_high = min(xs + x_ticks), max(xs + x_ticks)
    x_high = x_high if x_high > x_low else x_low + 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        if log_y:
            fraction = (math.log10(y) - math.log10(y_low)) / (math.log10(y_high) - math.log10(y_low))
        else:
            fraction = (y - y_low) / (y_high - y_low)
        return TOP + (1.0 - fraction) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" font-family="{escape(FONT)}" font-size="{FONT_PX}" role="img">'
           f"<title>{escape(title)}</title>",
           f'<text x="{LEFT}" y="{TOP - 12}" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#ffffff" '
           f'stroke="#888888"/>']
    for tick in y_ticks:
        y = py(tick)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{escape(tick_label(tick, log_y))}</text>")
    for tick in x_ticks:
        x = px(tick)
        out.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 4}" '
                   f'stroke="#888888"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                   f"{escape(tick_label(tick, False))}</text>")
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
               f"{escape(x_label)}</text>")
    out.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>')
    for item, points in zip(series, drawable, strict=True):
        coordinates = " ".join(f"{px(x):.1f},{py(min(max(y, y_low), y_high)):.1f}" for x, y in points)
        dash = f' stroke-dasharray="{escape(item.dash)}"' if item.dash else ""
        out.append(f'<polyline data-series="{escape(item.name)}" points="{coordinates}" fill="none" '
                   f'stroke="{escape(item.colour)}" stroke-width="{item.width}" '
                   f'stroke-opacity="{item.opacity}"{dash} stroke-linejoin="round"/>')
    legend_x = LEFT + plot_w + 12
    for index, item in enumerate(series):
        y = TOP + 8 + index * 18
        dash = f' stroke-dasharray="{escape(item.dash)}"' if item.dash else ""
        out.append(f'<line x1="{legend_x}" y1="{y}" x2="{legend_x + 24}" y2="{y}" '
                   f'stroke="{escape(item.colour)}" stroke-width="{item.width}" '
                   f'stroke-opacity="{item.opacity}"{dash}/>')
        out.append(f'<text x="{legend_x + 30}" y="{y + 4}">{escape(item.name)}</text>')
    out.append("</svg>")
    return "".join(out)
