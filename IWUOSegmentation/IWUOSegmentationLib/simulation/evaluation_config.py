"""What an evaluation run replays: one parameter object, built by `iwuo evaluate`, `iwuo demo` and tests.

The defaults are the frozen protocol's (docs/evaluation/protocol.md): every ranking, the perfect and
the correcting expert, 10 expert draws per case, 2000 seeds of each random baseline, 600 s of expert
time. `time_model` is both what the time-axis rankings expect and what the simulated expert is
charged (a fitted one, `iwuo evaluate --time-model FILE`, replaces the assumed constants; `time_model_file`
names it); `calibration` (`--calibration FILE`, data/calibration.py) is applied to each case's analysis
probabilities before it is scored, the label map kept; `notice` is what the noticed-gain ranking assumes a
clinician fixes, `tolerance` what the simulated expert believes and fixes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Optional

from ..data.calibration import Calibration
from ..ranking.correction_time import TimeModel
from ..ranking.noticed_errors import NoticeModel
from ..ranking.slice_scores import ScoreOptions
from ..ranking.strategies import STRATEGIES
from .experts import ExpertTolerance

#: Expert times (seconds from the start) at which the Dice gained is reported: 2, 5 and 10 minutes.
GAIN_TIMES = (120.0, 300.0, 600.0)


@dataclass(frozen=True)
class SensitivityGrid:
    """The declared grid of expert assumptions (protocol.md): look time, tracing cost, tolerance, minimum area.
    The rankings stay as the product runs them (the product does not know its clinician); only the simulated
    expert changes."""

    look_seconds: tuple[float, ...] = (2.0, 8.0, 20.0)
    seconds_per_mm: tuple[float, ...] = (0.05, 0.15, 0.3)
    distance_tolerance_mm: tuple[float, ...] = (2.0, 4.0)
    min_area_mm2: tuple[float, ...] = (4.0, 16.0, 36.0)

    def tolerances(self) -> list[tuple[float, float]]:
        """(distance tolerance, minimum area) pairs: what changes the expert's edits (and needs a new outcome)."""
        return list(itertools.product(self.distance_tolerance_mm, self.min_area_mm2))

    def times(self) -> list[tuple[float, float]]:
        """(look seconds, seconds per mm) pairs: what only changes the seconds."""
        return list(itertools.product(self.look_seconds, self.seconds_per_mm))


def cell_key(look: float, per_mm: float, tolerance: float, area: float) -> str:
    """The name of one grid cell in the per-case results and the CSV."""
    return f"look={look:g}|per_mm={per_mm:g}|tolerance={tolerance:g}|area={area:g}"


@dataclass
class EvaluationConfig:
    """Every choice of one evaluation run (one object instead of a long parameter list)."""

    strategies: tuple[str, ...] = tuple(STRATEGIES)
    experts: tuple[str, ...] = ("perfect", "noisy")
    expert_draws: int = 10
    random_seeds: int = 2000
    regions: Optional[tuple[str, ...]] = None  # None: WT/TC/ET of a BraTS model, else each structure
    label_convention: Optional[str] = None
    uncertainty_map: str = "entropy"
    score_options: ScoreOptions = field(default_factory=ScoreOptions)
    time_model: TimeModel = field(default_factory=TimeModel)
    time_model_file: Optional[str] = None  # None: the assumed constants
    calibration: Optional[Calibration] = None  # None: the analyses' probabilities as they are
    notice: NoticeModel = field(default_factory=NoticeModel)
    tolerance: ExpertTolerance = field(default_factory=ExpertTolerance)
    seconds_budget: float = 600.0
    time_step: float = 5.0
    per_region_rankings: bool = False
    sensitivity: bool = False
    grid: SensitivityGrid = field(default_factory=SensitivityGrid)

    def with_options(self, **changes) -> EvaluationConfig:
        return replace(self, **changes)
