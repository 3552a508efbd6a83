"""The review report's figure: Dice gain against slices corrected and against review time, as SVG text.

Why SVG, drawn here: the report is exported from stock Slicer, which has no matplotlib (and nothing may be
installed in its testing mode), from a review begun in the browser, and from `iwuo review-report`. SVG is
text, written with the standard library alone; browsers, markdown viewers and office programs show it;
and what it draws can be read back (the tests map its lines through its tick labels back to the log).
Left: the estimated Dice gain as a step line (orange, left axis); the measured Dice where a reference was
set (blue points, right axis). One panel per x quantity.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 900, 340
PANEL = WIDTH // 2
LEFT, RIGHT, TOP, BOTTOM = 64, 60, 24, 52  # margins of each panel's plot area
ESTIMATED, MEASURED, GRID = "#ff7f0e", "#1f77b4", "#dddddd"  # matplotlib's tab:orange and tab:blue
PANELS = (("slices", "slices corrected"), ("seconds", "review time (s)"))


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten apart; whole numbers if `integer`)
    covering [low, high]; a single value gets a range above it."""
    if not high > low:
        high = low + (0.1 * abs(low) if low else 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(step, 1.0) if integer else step
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _label(value: float, ticks: list[float]) -> str:
    """A tick label exact to the ticks' step."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _axis_scale(ticks: list[float], start: float, end: float):
    """value -> pixel along an axis drawn from `start` (first tick) to `end` (last tick)."""
    low, high = ticks[0], ticks[-1]
    return lambda v: start + (v - low) / (high - low) * (end - start)


def _points(xy) -> str:
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in xy)


def _panel(points: list[dict], x_key: str, x_label: str, left: float, legend: bool) -> list[str]:
    x0, x1, y0, y1 = left + LEFT, left + PANEL - RIGHT, HEIGHT - BOTTOM, TOP  # y0 at the bottom
    xs = [float(p[x_key]) for p in points]
    gains = [float(p["estimated_gain"]) for p in points]
    measured = [(x, float(p["measured_dice"])) for x, p in zip(xs, points) if p.get("measured_dice") is not None]
    x_ticks = nice_ticks(0.0, max(xs + [0.0]), integer=x_key == "slices")
    g_ticks = nice_ticks(min(gains + [0.0]), max(gains + [0.0]))
    sx, sg = _axis_scale(x_ticks, x0, x1), _axis_scale(g_ticks, y0, y1)
    out = [f'<g class="panel" data-x="{x_key}">']
    for t in x_ticks:
        out.append(f'<line x1="{sx(t):.2f}" y1="{y0}" x2="{sx(t):.2f}" y2="{y1}" stroke="{GRID}"/>')
        out.append(f'<text class="xtick" x="{sx(t):.2f}" y="{y0 + 16}" text-anchor="middle">{_label(t, x_ticks)}</text>')
    for t in g_ticks:
        out.append(f'<line x1="{x0}" y1="{sg(t):.2f}" x2="{x1}" y2="{sg(t):.2f}" stroke="{GRID}"/>')
        out.append(f'<text class="ytick-estimated" x="{x0 - 6}" y="{sg(t) + 4:.2f}" text-anchor="end">'
                   f'{_label(t, g_ticks)}</text>')
    out.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#444444"/>')
    steps = [(xs[0], gains[0])]
    for (x, gain), previous in zip(zip(xs[1:], gains[1:]), gains):
        steps += [(x, previous), (x, gain)]  # a step after each corrected slice, as matplotlib's where="post"
    out.append(f'<polyline class="estimated" points="{_points((sx(x), sg(g)) for x, g in steps)}" fill="none" '
               f'stroke="{ESTIMATED}" stroke-width="2"/>')
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate({left + 14},{(y0 + y1) / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'fill="{ESTIMATED}">estimated Dice gain</text>')
    if measured:
        m_ticks = nice_ticks(min(m for _, m in measured), max(m for _, m in measured))
        sm = _axis_scale(m_ticks, y0, y1)
        for t in m_ticks:
            out.append(f'<text class="ytick-measured" x="{x1 + 6}" y="{sm(t) + 4:.2f}" fill="{MEASURED}">'
                       f'{_label(t, m_ticks)}</text>')
        out.append(f'<polyline class="measured" points="{_points((sx(x), sm(m)) for x, m in measured)}" fill="none" '
                   f'stroke="{MEASURED}" stroke-width="1.5"/>')
        out += [f'<circle cx="{sx(x):.2f}" cy="{sm(m):.2f}" r="3" fill="{MEASURED}"/>' for x, m in measured]
        out.append(f'<text transform="translate({left + PANEL - 12},{(y0 + y1) / 2:.1f}) rotate(90)" '
                   f'text-anchor="middle" fill="{MEASURED}">measured Dice (vs reference)</text>')
    if legend:
        out.append(f'<text x="{x1 - 8}" y="{y0 - 24}" text-anchor="end" fill="{ESTIMATED}">— estimated Dice gain</text>')
        if measured:
            out.append(f'<text x="{x1 - 8}" y="{y0 - 8}" text-anchor="end" fill="{MEASURED}">● measured Dice</text>')
    return out + ["</g>"]


def curve_svg(points: list[dict]) -> str:
    """The figure of a correction curve (review/correction_curve.py: one point per corrected slice, from 0)."""
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            'font-family="sans-serif" font-size="12">',
            "<title>Dice gain against slices corrected and against review time</title>",
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    for i, (x_key, x_label) in enumerate(PANELS):
        body += _panel(points, x_key, x_label, i * PANEL, legend=i == 0)
    return "\n".join(body + ["</svg>"]) + "\n"
