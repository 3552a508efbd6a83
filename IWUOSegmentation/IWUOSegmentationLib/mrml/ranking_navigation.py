"""Navigation over a review's ranking: the ranked-slice table node, which rank is shown, and the views moved to it.

The table node ("IWUO ranking": rank, slice, the scores, status) is the ranking a saved scene keeps; its status
column follows the budget log. Navigation logs nothing itself: the review session decides what a visit logs.
Slice indices are along `axis` of the (k, j, i) array of the reviewed volume.
"""

from __future__ import annotations

from typing import Optional

from ..errors import ReviewNotResumableError
from ..review.budget_log import corrected_slices
from .analysis_nodes import named_node
from .slice_view import slice_centre_world, turn_view_to_slice

RANKING_TABLE = "IWUO ranking"
RED_VIEW = "Red"  # the layout name of the view the reviewer corrects in (Slicer's, and trame-slicer's)
#: Columns of the ranking table (the front ends read them through the controller).
COLUMN_RANK, COLUMN_SLICE, COLUMN_STATUS = "rank", "slice", "status"
SCORE_COLUMNS = ("iwuo", "impact", "uncertainty")  # the ranking rows' scores, under their own names


def ranking_table(scene, rows: Optional[list[dict]]):
    """The scene's ranking table; filled anew from `rows` (slice and scores, best first) when given."""
    import vtk

    table = named_node(scene, "vtkMRMLTableNode", RANKING_TABLE)
    if rows is None:
        return table
    table.RemoveAllColumns()
    columns = {}
    for name, cls in ((COLUMN_RANK, vtk.vtkIntArray), (COLUMN_SLICE, vtk.vtkIntArray),
                      *((score, vtk.vtkDoubleArray) for score in SCORE_COLUMNS), (COLUMN_STATUS, vtk.vtkStringArray)):
        columns[name] = cls()
        columns[name].SetName(name)
    for r, row in enumerate(rows, 1):
        columns[COLUMN_RANK].InsertNextValue(r)
        columns[COLUMN_SLICE].InsertNextValue(int(row["slice"]))
        for key in SCORE_COLUMNS:
            columns[key].InsertNextValue(float(row.get(key, 0.0)))
        columns[COLUMN_STATUS].InsertNextValue("pending")
    for array in columns.values():
        table.AddColumn(array)
    return table


def is_review_view(slice_node) -> bool:
    return RED_VIEW in (slice_node.GetName(), slice_node.GetLayoutName())


class RankingNavigation:
    """The ranked slices of one review and the rank shown (-1: none yet)."""

    def __init__(self, scene, volume, axis: int, rows: Optional[list[dict]] = None):
        self.scene, self.volume, self.axis = scene, volume, axis
        self.table = ranking_table(scene, rows)
        column = self.table.GetTable().GetColumnByName(COLUMN_SLICE)
        if column is None:
            raise ReviewNotResumableError("The scene has no IWUO ranking table; analyse the case first.")
        self.ranking: list[int] = [int(column.GetValue(i)) for i in range(column.GetNumberOfTuples())]
        self.current_rank = -1

    def status(self, rank_index: int) -> str:
        return self.table.GetTable().GetColumnByName(COLUMN_STATUS).GetValue(rank_index)

    def set_status(self, rank_index: int, status: str) -> None:
        if not 0 <= rank_index < len(self.ranking):  # VTK 9.6 raises, older VTK writes out of bounds
            raise IndexError(f"No slice at rank {rank_index + 1} of the ranking (1-{len(self.ranking)}).")
        self.table.GetTable().GetColumnByName(COLUMN_STATUS).SetValue(rank_index, status)
        self.table.GetTable().Modified()

    def show(self, rank_index: int) -> int:
        """Make `rank_index` (0-based) the shown rank: the review view turned to its slice, every other view centred
        on it; a pending slice becomes "shown". Returns the slice index."""
        if not 0 <= rank_index < len(self.ranking):
            raise IndexError(f"Rank {rank_index + 1} is outside the ranking (1-{len(self.ranking)}).")
        self.current_rank = rank_index
        index = self.ranking[rank_index]
        centre = slice_centre_world(self.volume, self.axis, index)
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            node = self.scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
            if is_review_view(node):
                turn_view_to_slice(node, self.volume, self.axis, index)
            else:
                node.JumpSliceByCentering(*centre)
        if self.status(rank_index) == "pending":
            self.set_status(rank_index, "shown")
        return index

    def rank_of(self, slice_index: int) -> Optional[int]:
        """The 1-based rank of a slice, None when it is not ranked."""
        return self.ranking.index(slice_index) + 1 if slice_index in self.ranking else None

    def impact(self, rank: Optional[int]) -> float:
        """The ranking's estimated Dice gain of the slice at 1-based `rank` (0 for an unranked slice)."""
        column = self.table.GetTable().GetColumnByName("impact")
        return float(column.GetValue(rank - 1)) if rank is not None and column is not None else 0.0

    def restore(self, events: list[dict]) -> None:
        """Statuses and the rank where the reviewer stopped, from a budget log's events."""
        done = corrected_slices(events)
        skipped = {int(e["slice"]) for e in events if e["kind"] == "slice_skipped"}
        shown = {int(e["slice"]) for e in events if e["kind"] == "slice_shown"}
        for i, s in enumerate(self.ranking):
            if s in done:
                self.set_status(i, "corrected")
            elif s in skipped:
                self.set_status(i, "skipped")
            elif s in shown:
                self.set_status(i, "shown")
        visited = [i for i, s in enumerate(self.ranking) if s in done | skipped]
        self.current_rank = max(visited) if visited else -1

    def rows(self) -> list[dict]:
        """Rank (1-based), slice, IWUO score and status of every ranked slice, best first."""
        table = self.table.GetTable()
        iwuo, status = table.GetColumnByName("iwuo"), table.GetColumnByName(COLUMN_STATUS)
        return [{"rank": r + 1, "slice": s, "iwuo": iwuo.GetValue(r), "status": status.GetValue(r)}
                for r, s in enumerate(self.ranking)]
