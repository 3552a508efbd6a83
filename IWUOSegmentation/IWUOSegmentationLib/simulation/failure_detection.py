"""Slice-level failure detection and per-case quality estimation, as in Zenk et al. 2025.

A slice "fails" when the expert would edit it (an error beyond their tolerance in any region).
Each ground-truth-free score is judged by AUROC and AUPRC of finding those slices and by the
area under the risk-coverage curve (AURC: accept the least suspicious slices first; risk = share
of failed slices among those accepted; lower is better). AUROC/AUPRC come from scikit-learn.
"""

from __future__ import annotations

import numpy as np


def score_from_order(order: np.ndarray) -> np.ndarray:
    """A per-slice score from a ranking (first = highest), for rankings without a score of their own."""
    order = np.asarray(order, dtype=np.int64)
    score = np.empty(len(order), float)
    score[order] = np.arange(len(order), 0, -1, dtype=float)
    return score


def aurc(failed: np.ndarray, score: np.ndarray) -> float:
    """Area under the risk-coverage curve: mean over k of the failure share among the k least suspicious slices."""
    failed = np.asarray(failed, bool)
    if failed.size == 0:
        return float("nan")
    accepted = failed[np.argsort(np.asarray(score, float), kind="stable")]
    return float(np.mean(np.cumsum(accepted) / np.arange(1, len(accepted) + 1)))


def detection_metrics(failed: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC (average precision) and AURC of `score` for the `failed` slices (NaN if one class is absent)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    failed = np.asarray(failed, bool)
    score = np.asarray(score, float)
    both = failed.any() and not failed.all()
    return {"auroc": float(roc_auc_score(failed, score)) if both else float("nan"),
            "auprc": float(average_precision_score(failed, score)) if both else float("nan"),
            "aurc": aurc(failed, score), "prevalence": float(failed.mean()) if failed.size else float("nan")}


def quality_estimate_errors(expected: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """MAE and Pearson r between expected and measured per-case Dice."""
    expected, measured = np.asarray(expected, float), np.asarray(measured, float)
    ok = ~(np.isnan(expected) | np.isnan(measured))
    expected, measured = expected[ok], measured[ok]
    if expected.size == 0:
        return {"cases": 0, "mae": float("nan"), "pearson_r": float("nan")}
    r = float(np.corrcoef(expected, measured)[0, 1]) if expected.size > 2 and expected.std() > 0 and measured.std() > 0 \
        else float("nan")
    return {"cases": int(expected.size), "mae": float(np.abs(expected - measured).mean()), "pearson_r": r}
