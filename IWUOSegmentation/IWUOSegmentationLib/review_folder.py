"""The review folder: one place per case that both front ends read and write.

    <review folder>/analysis/                       `iwuo analyze` output (summary.json, maps)
    <review folder>/review.budget.jsonl             the BudgetLog (source of truth of the review)
    <review folder>/corrected_segmentation.nii.gz   the corrected label map, rewritten atomically per edit
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReviewFolder:
    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def log(self) -> Path:
        return self.root / "review.budget.jsonl"

    @property
    def corrected(self) -> Path:
        return self.root / "corrected_segmentation.nii.gz"

    def has_analysis(self) -> bool:
        return (self.analysis / "summary.json").is_file()
