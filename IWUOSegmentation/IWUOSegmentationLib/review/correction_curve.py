"""The Dice-vs-corrections curve of a review, from its budget-log events: the one copy of this rule.

The MRML chart (mrml/review_session.py) and the review report (review/report.py), which the browser
app writes too, draw this curve. A slice corrected again moves the curve's last point (its gain and measured Dice
are updated), it adds none: the x axis counts slices, not corrections. A slice the reviewer marked done counts as
corrected too (budget_log.CORRECTION_KINDS). `measured_dice` is the Dice of all foreground segments together
against the reference (the log's `measured_foreground_dice`).
"""

from __future__ import annotations

from typing import Optional

from .budget_log import CORRECTION_KINDS, VISIT_KINDS, logged_foreground_dice, slice_gain


def correction_curve(events: list[dict]) -> list[dict]:
    """One point per newly corrected slice: slices so far, seconds so far, summed estimated gain, measured Dice."""
    seconds = 0.0
    gains: dict[int, float] = {}
    measured: Optional[float] = None
    points = [{"slices": 0, "seconds": 0.0, "estimated_gain": 0.0, "measured_dice": None}]
    started = [e for e in events if e["kind"] == "session_started"]
    if started and started[0].get("initial_dice") is not None:
        points[0]["measured_dice"] = measured = float(started[0]["initial_dice"])
    for e in events:
        if e["kind"] in VISIT_KINDS:
            seconds += float(e.get("seconds", 0.0))
        if e["kind"] not in CORRECTION_KINDS:
            continue
        new = int(e["slice"]) not in gains
        slice_gain(gains, e)
        if logged_foreground_dice(e) is not None:
            measured = float(logged_foreground_dice(e))
        point = {"slices": len(gains), "seconds": round(seconds, 3), "estimated_gain": sum(gains.values()),
                 "measured_dice": measured}
        if new:
            points.append(point)
        else:
            points[-1] = point
    return points
