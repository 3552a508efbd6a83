"""One evaluation case on disk: analyse (or reuse), replay every strategy with the simulated experts, and
keep the result or the failure beside it, so that `iwuo evaluate` (cli/evaluate.py) can resume a batch.

Each case's results are saved as soon as it finishes (cases/<name>/evaluation.json), so a
re-run resumes (a result file that cannot be read back is redone). A failing case does not stop
the batch, but it is never silent: it is listed in report.md, in failures.json and in the printed
JSON, as bad input (the case's files: fix them) or as an internal error (a bug: the traceback is
in cases/<name>/error.txt), and the command exits non-zero (1 if any internal error, else the bad
case's code, 2). `--shard i/n` takes every n-th case starting at i (a cluster job array), and
`--merge-only` builds the tables, statistics, plots and report from whatever per-case results exist.
`--replay-only` re-runs the (cheap) replay of every case from its saved analysis
(cases/<name>/analysis) without the model: new strategies, experts or budgets without analysing again.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import BadInputError, BadModelError, IWUOError, OutOfMemoryError
from ..ranking.strategies import STRATEGIES
from ..storage.atomic_files import atomic_write_text
from .evaluation_config import EvaluationConfig

#: Names accepted by --strategies, in the reports' order: those of ranking/strategies.py.
STRATEGY_NAMES = tuple(STRATEGIES)


def region_names(regions) -> list[str] | None:
    """None (auto) or the region names asked for."""
    if regions is None or list(regions) in (["auto"], ["AUTO"]) or regions == "auto":
        return None
    return [r for r in regions if r]


def evaluate_folder_case(folder: Path, model, analyzer, out_case: Path, config: EvaluationConfig,
                         progress=None) -> dict:
    """Analyse (or reuse the analysis of) one case folder and replay all strategies on it, as `config` says.

    `model` and `analyzer` (nnunet/analysis.CaseAnalyzer) may be None when the analysis is already saved (replay only)."""
    import SimpleITK as sitk

    from ..data.analysis_files import read_analysis
    from ..data.case_folders import find_case_files
    from ..data.structures import (
        describe_labels,
        detect_convention,
        evaluation_regions,
        reference_label_check,
        reference_values_allowed,
        resolve_convention,
        structures_from_dataset_json,
        structures_from_summary,
    )
    from ..nnunet.inference import CaseImages, same_geometry
    from ..ranking.slice_scores import slice_axis
    from .evaluation import evaluate_case

    channel_names = model.channel_names if model is not None else None
    files = find_case_files(folder, channel_names) if channel_names is not None else _files_for_replay(folder, out_case)
    if files.reference is None:
        raise BadInputError(f"Case {folder.name} has no reference label file (label*, seg*, OTMultiClass*).")
    analysis_dir = out_case / "analysis"
    # with an analyzer, an analysis of other images or another model is redone; without one (replay only) the
    # saved analysis is what there is
    case = CaseImages.from_files([str(p) for p in files.images]) if analyzer is not None else None
    stale = _stale_analysis(analysis_dir, case, model if analyzer is not None else None)
    if stale:
        if analyzer is None:
            raise BadInputError(f"Case {folder.name}: {stale}; run without --replay-only.")
        if (analysis_dir / "summary.json").is_file() and progress is not None:
            progress(0.0, f"the saved analysis is not reused ({stale})")
        analyzer.analyze_into(case, analysis_dir, progress=progress)
    analysis = read_analysis(analysis_dir)
    try:
        ref_image = sitk.ReadImage(str(files.reference))
    except RuntimeError as exc:
        raise BadInputError(f"Case {folder.name}: cannot read the reference {files.reference.name}: "
                            f"{str(exc).strip().splitlines()[-1]}") from exc
    if not same_geometry(ref_image, analysis.geometry):
        raise BadInputError(f"Case {folder.name}: the reference label's grid ({ref_image.GetSize()}, spacing "
                            f"{ref_image.GetSpacing()}) differs from the images' grid ({analysis.geometry.GetSize()}, "
                            f"{analysis.geometry.GetSpacing()}); resample it onto the images first.")
    reference = sitk.GetArrayFromImage(ref_image).astype(np.int64)
    structures = (structures_from_dataset_json(model.dataset_json) if model is not None
                  else structures_from_summary(analysis.summary))
    convention = config.label_convention
    regions = evaluation_regions(structures, region_names(config.regions), convention)
    reference_label_check(set(np.unique(reference).tolist()), reference_values_allowed(structures, convention),
                          folder.name, describe_labels(structures, convention))
    axis = slice_axis(analysis.geometry.GetSpacing())
    evaluation = evaluate_case(analysed_case(folder.name, analysis, structures, config), reference, config, regions)
    record = {"case": folder.name, "axis": axis, "n_slices": evaluation.n_slices, "rows": evaluation.rows,
              "draws": evaluation.draws, "settings": config_record(config),
              "metrics_before_correction": evaluation.metrics,
              "curves": {"|".join(k): [round(float(x), 6) for x in v] for k, v in evaluation.curves.items()},
              "analysis_seconds": analysis.summary.get("seconds"),
              "regions": {n: {"structure": r.structure.name, "reference_values": list(r.reference_values)}
                          for n, r in regions.items()},
              "label_convention": resolve_convention(convention) if convention else detect_convention(structures),
              "time_grid": evaluation.time_grid, "seconds_budget": config.seconds_budget,
              "time_curves": {"|".join(k): [round(float(x), 6) for x in v] for k, v in evaluation.time_curves.items()},
              "failure_detection": evaluation.failure_detection, "quality": evaluation.quality,
              "expert_agreement": evaluation.expert_agreement, "members": analysis.summary.get("members"),
              "sensitivity": evaluation.sensitivity}
    atomic_write_text(out_case / "evaluation.json", json.dumps(record))
    return record


def analysed_case(name: str, analysis, structures, config: EvaluationConfig):
    """The evaluation's view of a saved analysis (data/analysis_files.LoadedAnalysis): with `config.calibration`, its
    probabilities and entropy calibrated (data/calibration.apply_calibration: refused for an analysis of another
    model or one calibrated already), the label map kept."""
    from ..data.calibration import apply_calibration
    from .evaluation import AnalysedCase

    if config.calibration is not None:
        analysis = apply_calibration(config.calibration, analysis)
    return AnalysedCase(name, analysis.label_map, analysis.probabilities, analysis.uncertainty[config.uncertainty_map],
                        analysis.geometry.GetSpacing(), structures, analysis.member_variance)


def config_record(config: EvaluationConfig) -> dict:
    """The settings a per-case result was replayed with (kept beside it, and quoted by the report)."""
    return {"expert_draws": config.expert_draws, "random_seeds": config.random_seeds,
            "uncertainty_map": config.uncertainty_map, "per_region_rankings": config.per_region_rankings,
            "time_model": asdict(config.time_model), "time_model_file": config.time_model_file,
            "calibration": _calibration_settings(config), "expert_tolerance": asdict(config.tolerance),
            "notice_model": asdict(config.notice)}


def _calibration_settings(config: EvaluationConfig) -> dict | None:
    """What a per-case result records of the calibration it was replayed with (None: none)."""
    from ..data.calibration import calibration_record

    return None if config.calibration is None else calibration_record(config.calibration)


def replayed_with_other_settings(record: dict, config: EvaluationConfig) -> str | None:
    """Why a saved per-case result was replayed with another calibration or time model than `config` (None: the
    same), so that it is replayed again rather than reused."""
    settings = record.get("settings") or {}
    recorded = (settings.get("calibration") or {}).get("sha256")
    wanted = None if config.calibration is None else config.calibration.sha256
    if recorded != wanted:
        return "it was replayed with another calibration"
    if settings.get("time_model", asdict(config.time_model)) != asdict(config.time_model):
        return "it was replayed with another time model"
    return None


CASE_RESULT, CASE_ERROR = "evaluation.json", "error.json"
#: What a failed case is listed as; anything else that escapes a case is an internal error (a bug).
FAILURE_KINDS = ((BadInputError, "bad input"), (BadModelError, "bad model"), (OutOfMemoryError, "out of memory"),
                 (IWUOError, "error"))


def _stale_analysis(analysis_dir: Path, case, model) -> str | None:
    """Why the saved analysis cannot be used (None: it can): missing, damaged, or made from other images or
    another model than this case and `model` (with no model, replay only, nothing is compared)."""
    from ..data.analysis_identity import case_identity, check_analysis_folder, model_identity

    if not (analysis_dir / "summary.json").is_file():
        return f"no saved analysis in {analysis_dir}"
    if model is None:
        return None
    try:
        check_analysis_folder(analysis_dir, case_identity(case, model.channel_names), model_identity(model))
    except BadInputError as exc:
        return str(exc)
    return None


def saved_result(folder: Path, out_case: Path, model, config: EvaluationConfig | None = None) -> dict | None:
    """The case's saved result when it can be reused: readable, replayed with `config`'s calibration and time model,
    and its analysis made from this case's images with this model (a changed image, model, calibration or time
    model is evaluated again, never silently reused)."""
    from ..data.case_folders import find_case_files
    from ..data.case_images import CaseImages

    record = read_case_result(out_case)
    if record is not None and config is not None and replayed_with_other_settings(record, config):
        return None
    if record is None or model is None:
        return record
    try:
        case = CaseImages.from_files([str(p) for p in find_case_files(folder, model.channel_names).images])
    except BadInputError:
        return None  # evaluated again, and the failure is recorded then
    return record if _stale_analysis(out_case / "analysis", case, model) is None else None


def read_case_result(out_case: Path) -> dict | None:
    """The saved result of one case, or None when there is none or it cannot be read back (then it is redone)."""
    path = out_case / CASE_RESULT
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and "curves" in record else None


def record_case_failure(out_case: Path, exc: BaseException) -> dict:
    """Write why a case failed (error.json, error.txt with the traceback); bad input vs an internal error."""
    bad_input = isinstance(exc, IWUOError)
    kind = next((k for cls, k in FAILURE_KINDS if isinstance(exc, cls)), "internal error")
    failure = {"case": out_case.name, "kind": kind,
               "exit_code": exc.exit_code if bad_input else 1,
               "error": str(exc) if bad_input else f"{type(exc).__name__}: {exc}"}
    out_case.mkdir(parents=True, exist_ok=True)
    (out_case / CASE_RESULT).unlink(missing_ok=True)
    atomic_write_text(out_case / CASE_ERROR, json.dumps(failure))
    atomic_write_text(out_case / "error.txt", f"{failure['kind']}: {failure['error']}\n\n{traceback.format_exc()}")
    return failure


def case_failures(out: Path) -> list[dict]:
    """Every case under out/cases without a readable result: its recorded failure, or an unreadable result."""
    failures = []
    for out_case in sorted(p for p in (out / "cases").glob("*") if p.is_dir()):
        if read_case_result(out_case) is not None:
            continue
        try:
            failures.append(json.loads((out_case / CASE_ERROR).read_text()))
        except (OSError, json.JSONDecodeError):
            if (out_case / CASE_RESULT).is_file():
                failures.append({"case": out_case.name, "kind": "unreadable result", "exit_code": 1,
                                 "error": f"{out_case / CASE_RESULT} cannot be read back; re-run without "
                                          "--merge-only to redo the case"})
    return failures


def failure_exit_code(failures: list[dict]) -> int:
    """0 without failures; 1 if any is an internal error (a bug); else the bad input's code."""
    if not failures:
        return 0
    codes = [int(f.get("exit_code", 1)) for f in failures]
    return 1 if 1 in codes else max(codes)


def _files_for_replay(folder: Path, out_case: Path):
    """The case's reference file when the model is not opened (replay only): images are not needed."""
    from ..data.case_folders import REFERENCE_PATTERNS, CaseFiles, _images_in, _key

    refs = [f for f in _images_in(folder) if any(p in _key(f.name.split(".")[0]) for p in REFERENCE_PATTERNS)]
    return CaseFiles(name=folder.name, images=[], reference=refs[0] if len(refs) == 1 else None)
