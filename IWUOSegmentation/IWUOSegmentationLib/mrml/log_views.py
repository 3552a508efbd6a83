"""The budget log shown in the scene: the log table and the Dice-vs-slices chart, drawn from the logged events.

Views only: they are redrawn from the log's events (in memory, review/budget_log.py) whenever an event is
logged, and hold nothing the log does not. The chart is the review report's curve (review/correction_curve.py).
"""

from __future__ import annotations

import json

from ..review.budget_log import CORRECTION_KINDS, BudgetSummary, logged_foreground_dice
from ..review.correction_curve import correction_curve
from .analysis_nodes import named_node

LOG_TABLE = "IWUO budget log"
CURVE_TABLE = "IWUO Dice curve"
CHART = "IWUO Dice vs slices corrected"
ATTR_SUMMARY = "IWUO.summary"  # JSON: the log table's budget summary, the segmentation's ensemble members
LOG_COLUMNS = ("kind", "slice", "rank", "seconds", "voxels_changed", "measured_foreground_dice")


class LogViews:
    """The scene's log table (one row per event) and the chart of the correction curve."""

    def __init__(self, scene):
        self.scene = scene
        self.log_table = named_node(scene, "vtkMRMLTableNode", LOG_TABLE)

    def show(self, events: list[dict], summary: BudgetSummary, with_reference: bool) -> None:
        """Redraw both views from the log's `events` (and its `summary`); `with_reference`: plot the measured Dice."""
        import vtk

        self.log_table.RemoveAllColumns()
        arrays = {name: vtk.vtkStringArray() for name in LOG_COLUMNS}
        for name, array in arrays.items():
            array.SetName(name)
        for e in events:
            voxels = sum(e.get("voxels_added", {}).values()) + sum(e.get("voxels_removed", {}).values())
            values = (e["kind"], e.get("slice", ""), e.get("rank", ""), e.get("seconds", ""),
                      voxels if e["kind"] in CORRECTION_KINDS else "", logged_foreground_dice(e))
            for name, value in zip(LOG_COLUMNS, values):
                arrays[name].InsertNextValue("" if value is None else str(value))
        for array in arrays.values():
            self.log_table.AddColumn(array)
        self.log_table.SetAttribute(ATTR_SUMMARY, json.dumps(summary.__dict__))
        self._show_curve(events, with_reference)

    def _show_curve(self, events: list[dict], with_reference: bool) -> None:
        """Plot chart: measured Dice (or the estimated Dice gain so far) against slices corrected, one point per
        corrected slice."""
        import vtk

        points = correction_curve(events)
        columns = {"slices_corrected": [float(p["slices"]) for p in points],
                   "estimated_dice_gain": [p["estimated_gain"] for p in points]}
        if with_reference:
            columns["measured_dice"] = [p["measured_dice"] for p in points]
        table = named_node(self.scene, "vtkMRMLTableNode", CURVE_TABLE)
        table.RemoveAllColumns()
        for name, values in columns.items():
            array = vtk.vtkDoubleArray()
            array.SetName(name)
            for v in values:  # NaN: no measured Dice before a reference was chosen (set after the session began)
                array.InsertNextValue(float("nan") if v is None else v)
            table.AddColumn(array)
        chart = named_node(self.scene, "vtkMRMLPlotChartNode", CHART)
        chart.SetXAxisTitle("slices corrected")
        chart.SetYAxisTitle("all-foreground Dice" if with_reference else "estimated Dice gain")
        y_name = "measured_dice" if with_reference else "estimated_dice_gain"
        series = named_node(self.scene, "vtkMRMLPlotSeriesNode", f"IWUO {y_name}")
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("slices_corrected")
        series.SetYColumnName(y_name)
        series.SetPlotType(series.PlotTypeScatter)
        if not chart.HasPlotSeriesNodeID(series.GetID()):
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
