"""Reads the review report's figure (review/curve_figure.py) back into numbers, for the tests.

Each panel's lines are mapped from pixels to values through the panel's own tick labels (their text and
position), so a test compares what the figure draws with what the log says, not metadata written beside it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def _scale(ticks: list[tuple[float, float]]):
    """pixel -> value through the first and last tick (pixel, value)."""
    (p0, v0), (p1, v1) = ticks[0], ticks[-1]
    return lambda p: v0 + (p - p0) * (v1 - v0) / (p1 - p0)


def _ticks(panel, css_class: str, attribute: str) -> list[tuple[float, float]]:
    ticks = [(float(t.get(attribute)) - (4.0 if attribute == "y" else 0.0), float(t.text))
             for t in panel.iter(f"{SVG}text") if t.get("class") == css_class]
    return sorted(ticks)


def _polyline(panel, css_class: str) -> list[tuple[float, float]]:
    for line in panel.iter(f"{SVG}polyline"):
        if line.get("class") == css_class:
            return [tuple(map(float, pair.split(","))) for pair in line.get("points").split()]
    return []


def read_curve_svg(text: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """x quantity ("slices", "seconds") -> {"estimated": step-line vertices, "measured": points}, in data units."""
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg", root.tag
    panels = {}
    for panel in root.iter(f"{SVG}g"):
        if panel.get("class") != "panel":
            continue
        x = _scale(_ticks(panel, "xtick", "x"))
        lines = {"estimated": [], "measured": []}
        for kind in lines:
            ticks = _ticks(panel, f"ytick-{kind}", "y")
            if ticks:
                y = _scale(ticks)
                lines[kind] = [(x(px), y(py)) for px, py in _polyline(panel, kind)]
        panels[panel.get("data-x")] = lines
    return panels


def drawn_points(text: str, x_key: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(estimated gain at each curve point, measured Dice points) as drawn in the panel of `x_key`: the step line's
    vertices where it reaches a new value are every other one."""
    panel = read_curve_svg(text)[x_key]
    return panel["estimated"][0::2], panel["measured"]


def assert_figure_follows_the_log(svg: str, events: list[dict]) -> None:
    """Both panels of the report's figure draw the correction curve of `events`: the estimated gain as a step
    line through every curve point, the measured Dice as points (read back through the tick labels)."""
    from IWUOSegmentationLib.review.correction_curve import correction_curve

    curve = correction_curve(events)
    for x_key in ("slices", "seconds"):
        estimated, measured = drawn_points(svg, x_key)
        span_x = max(max(p[x_key] for p in curve), 1.0)
        span_y = max(max(p["estimated_gain"] for p in curve), 1e-3)
        assert len(estimated) == len(curve), (x_key, estimated)
        for (x, y), point in zip(estimated, curve):
            assert abs(x - point[x_key]) < 1e-3 * span_x and abs(y - point["estimated_gain"]) < 1e-3 * span_y, \
                (x_key, (x, y), point)
        expected = [(p[x_key], p["measured_dice"]) for p in curve if p["measured_dice"] is not None]
        assert len(measured) == len(expected)
        for (x, y), (ex, ey) in zip(measured, expected):
            assert abs(x - ex) < 1e-3 * span_x and abs(y - ey) < 1e-4, (x_key, (x, y), (ex, ey))
