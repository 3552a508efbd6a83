"""`iwuo evaluate`: the batch of cases, resumable, shardable, with the failures listed (see
simulation/evaluate_folders.py for what one case does)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BadInputError, CancelledError
from ..nnunet.analysis_settings import DEFAULT_DEVICE, DEFAULT_MEMBERS_TEXT
from ..ranking.slice_scores import ScoreOptions
from ..simulation.evaluate_folders import (
    CASE_ERROR,
    CASE_RESULT,
    STRATEGY_NAMES,
    case_failures,
    evaluate_folder_case,
    failure_exit_code,
    read_case_result,
    record_case_failure,
    region_names,
    replayed_with_other_settings,
    saved_result,
)
from ..simulation.evaluation_config import EvaluationConfig
from ..storage.atomic_files import atomic_write_text, make_folder
from .arguments import analysis_settings, parse_folds
from .progress import Progress


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="Dice-vs-budget evaluation of ranking strategies on cases with a reference")
    p.add_argument("--cases", nargs="+", default=[], help="folders of case folders (images + reference label)")
    p.add_argument("--model", default=None, help="model folder (default: bundled demo model)")
    p.add_argument("--configuration", default=None)
    p.add_argument("--folds", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--strategies", default=",".join(STRATEGY_NAMES),
                   help=f"comma-separated, any of: {', '.join(STRATEGY_NAMES)}")
    p.add_argument("--expert", default="perfect,noisy",
                   help="comma-separated: perfect, noisy (= the correcting expert), redrawing (the earlier noisy one)")
    p.add_argument("--regions", default="auto",
                   help="regions to score: auto (WT,TC,ET for a BraTS model, else each of the model's labels/regions "
                        "and all foreground), or names of the model's structures")
    p.add_argument("--label-convention", default=None,
                   help="labels of the reference files when they are not the model's own: brats2013 (2013-2015), "
                        "brats2021 (2017-2021) or brats2023 (2023-2024)")
    p.add_argument("--uncertainty-map", default="entropy",
                   choices=["entropy", "variance", "mutual_information", "disagreement"])
    p.add_argument("--budget", type=int, default=None, help="slice budget for the report (default: all slices)")
    p.add_argument("--seconds-budget", type=float, default=600.0,
                   help="time budget (s) under the expert time model: the Dice-vs-seconds AUBC is taken over it")
    p.add_argument("--per-region-rankings", action="store_true",
                   help="rank slices separately for each region (default: one ranking, a visit fixes every label)")
    p.add_argument("--replay-only", action="store_true",
                   help="re-run only the replay of cases whose analysis is saved under --out (no model needed)")
    p.add_argument("--random-seeds", type=int, default=2000,
                   help="orderings each random baseline (random, tumour_first_random) is averaged over")
    p.add_argument("--expert-draws", type=int, default=10,
                   help="draws of the correcting expert per case (each one rater); a case's numbers are their mean")
    p.add_argument("--sensitivity", action="store_true",
                   help="also replay the correcting expert in every cell of the declared grid (look 2/8/20 s, "
                        "0.05/0.15/0.3 s per mm, tolerance 2/4 mm, minimum area 4/16/36 mm2): sensitivity.csv and "
                        "sensitivity.png")
    p.add_argument("--calibration", default=None, metavar="FILE",
                   help="a site calibration of the model (iwuo calibrate) applied to each case's probabilities before "
                        "the replay, the label map kept; refused for another model (default: none, the evaluation does "
                        "not depend on what is saved in ~/.iwuo)")
    p.add_argument("--time-model", default=None, metavar="FILE",
                   help="a file written by iwuo calibrate whose fitted time model replaces the assumed one (8 s per "
                        "slice, 0.15 s per mm) for the rankings and the simulated experts; any model's file will do")
    p.add_argument("--members", default=DEFAULT_MEMBERS_TEXT)
    p.add_argument("--disable-tta", action="store_true", help="no test-time mirroring (8x faster; no flip members)")
    p.add_argument("--device", default=DEFAULT_DEVICE)
    p.add_argument("--shard", default="0/1", help="i/n: evaluate cases i, i+n, i+2n, ...")
    p.add_argument("--merge-only", action="store_true")
    p.set_defaults(func=run)


def _shard(items: list, shard: str) -> list:
    try:
        i, n = (int(v) for v in shard.split("/"))
    except ValueError as exc:
        raise BadInputError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from exc
    if not (n >= 1 and 0 <= i < n):
        raise BadInputError(f"--shard {shard}: need 0 <= i < n.")
    return items[i::n]


def _lock_output(out: Path, shard: str, merge_only: bool):
    """One `iwuo evaluate` per output folder (FolderLockedError, exit 2, names the other); the shards of one
    job array share the folder, each locking its own shard."""
    from ..storage.folder_lock import LOCK_FILE, lock_folder

    sharded = shard != "0/1" and not merge_only
    if sharded:
        _shard([], shard)  # refuse a malformed --shard before it names a file
    name = f".iwuo.shard-{shard.replace('/', '-of-')}.lock" if sharded else LOCK_FILE
    return lock_folder(out, f"iwuo evaluate --shard {shard}" if sharded else "iwuo evaluate", what="evaluation",
                       name=name)


def evaluation_config(args) -> EvaluationConfig:
    """The run's EvaluationConfig from the command line; unknown names and impossible counts are bad input."""
    strategies = tuple(s.strip() for s in args.strategies.split(","))
    unknown = [s for s in strategies if s not in STRATEGY_NAMES]
    if unknown:
        raise BadInputError(f"Unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGY_NAMES)}.")
    experts = tuple(e.strip() for e in args.expert.split(","))
    bad_experts = [e for e in experts if e not in ("perfect", "noisy", "correcting", "redrawing")]
    if bad_experts:
        raise BadInputError(f"Unknown expert {', '.join(bad_experts)}; choose from perfect, noisy, redrawing.")
    if args.expert_draws < 1 or args.random_seeds < 1:
        raise BadInputError("--expert-draws and --random-seeds must be at least 1.")
    if args.sensitivity and args.per_region_rankings:
        raise BadInputError("--sensitivity replays one ranking for all regions; drop --per-region-rankings.")
    calibration, time_model = _site_files(args)
    return EvaluationConfig(strategies=strategies, experts=experts, expert_draws=args.expert_draws,
                            random_seeds=args.random_seeds, regions=tuple(r.strip() for r in args.regions.split(",")),
                            label_convention=args.label_convention, uncertainty_map=args.uncertainty_map,
                            score_options=ScoreOptions(uncertainty_map=args.uncertainty_map),
                            seconds_budget=args.seconds_budget, per_region_rankings=args.per_region_rankings,
                            sensitivity=args.sensitivity, calibration=calibration, time_model_file=args.time_model,
                            **({"time_model": time_model} if time_model is not None else {}))


def _site_files(args):
    """The calibration (data/calibration.load_calibration) and the fitted time model (review/time_model_fit.
    load_time_model: a file of `iwuo calibrate`, refused without a time model) asked for, or None; a bad file is
    refused with one line before anything is written."""
    from ..data.calibration import load_calibration
    from ..review.time_model_fit import load_time_model

    calibration = load_calibration(args.calibration) if args.calibration else None
    return calibration, load_time_model(args.time_model) if args.time_model else None


def _check_calibration_model(config: EvaluationConfig, identities) -> None:
    """Refuse (one line) a calibration of another model than every one in `identities` (the model's, or the saved
    analyses' of a replay), before any case is analysed or replayed."""
    from ..data.calibration import check_model

    if config.calibration is not None:
        for identity in identities:
            check_model(config.calibration, identity)


def _saved_analysis_models(out: Path) -> list[dict]:
    """The model identities the saved analyses under `out` record (what a replay-only run calibrates)."""
    from ..errors import BadCalibrationError

    identities = []
    for path in sorted((out / "cases").glob("*/analysis/summary.json")):
        try:
            identity = (json.loads(path.read_text()).get("identity") or {}).get("model")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # the case fails, and is listed, when it is replayed
        if not identity:
            raise BadCalibrationError(f"The analysis {path.parent} records no model identity (written by an older "
                                      "version), so no calibration can be checked against it; run without --replay-only.")
        identities.append(identity)
    return identities


def run(args) -> int:
    from ..data.case_folders import list_case_folders
    from ..nnunet.analysis import CaseAnalyzer
    from ..nnunet.model_folder import open_model
    from ..simulation.report import write_report

    out = Path(args.out)
    config = evaluation_config(args)  # a bad calibration or time-model file is refused before anything is written
    if args.replay_only and not args.merge_only and config.calibration is not None:
        _check_calibration_model(config, _saved_analysis_models(out))
    make_folder(out)
    lock = _lock_output(out, args.shard, args.merge_only)  # noqa: F841 - held until the command returns
    progress = Progress(args.progress)
    folders = []
    if args.replay_only and not args.merge_only:
        folders = _shard([f for root in args.cases for f in list_case_folders(root)], args.shard) if args.cases else []
        by_name = {f.name: f for f in folders}
        for i, case_dir in enumerate(sorted(p.parent.parent for p in (out / "cases").glob("*/analysis/summary.json"))):
            folder = by_name.get(case_dir.name)
            if folder is None:
                continue
            try:
                evaluate_folder_case(folder, None, None, case_dir, config)
                (case_dir / CASE_ERROR).unlink(missing_ok=True)
                (case_dir / "error.txt").unlink(missing_ok=True)
                progress((i + 1) / max(len(by_name), 1), f"{folder.name}: replayed")
            except CancelledError:
                raise
            except Exception as exc:  # recorded, listed and counted in the exit code, as in a full run
                failure = record_case_failure(case_dir, exc)
                print(f"case {folder.name} failed ({failure['kind']}), skipped: {failure['error']}")
    elif not args.merge_only:
        if not args.cases:
            raise BadInputError("Give --cases (folders of case folders) or --merge-only.")
        folders = _shard([f for root in args.cases for f in list_case_folders(root)], args.shard)
        model = open_model(args.model, configuration=args.configuration, folds=parse_folds(args.folds))
        from ..data.analysis_identity import model_identity

        _check_calibration_model(config, [model_identity(model)])
        from ..data.structures import evaluation_regions, structures_from_dataset_json

        # unknown region names or conventions are refused before any case is analysed
        evaluation_regions(structures_from_dataset_json(model.dataset_json), region_names(config.regions),
                           args.label_convention)
        analyzer = CaseAnalyzer(model, analysis_settings(args))  # networks loaded once for every case
        for i, folder in enumerate(folders):
            out_case = out / "cases" / folder.name
            if saved_result(folder, out_case, model, config) is not None:
                progress((i + 1) / len(folders), f"{folder.name}: done before, reused")
                continue
            saved = read_case_result(out_case)
            why = replayed_with_other_settings(saved, config) if saved is not None else None
            if why:
                print(f"case {folder.name}: {why} than asked; replaying it again")
            elif saved is not None:
                print(f"case {folder.name}: its saved result was made from other images or another model than "
                      "these; evaluating it again")
            elif (out_case / CASE_RESULT).is_file():
                print(f"case {folder.name}: its saved result cannot be read back; evaluating it again")
            try:
                def case_progress(f, m, i=i, name=folder.name):
                    progress((i + f) / len(folders), f"{name}: {m}")

                evaluate_folder_case(folder, model, analyzer, out_case, config, progress=case_progress)
                (out_case / CASE_ERROR).unlink(missing_ok=True)
                (out_case / "error.txt").unlink(missing_ok=True)
                progress((i + 1) / len(folders), f"{folder.name}: evaluated")
            except CancelledError:
                raise
            except Exception as exc:  # recorded, listed and counted in the exit code; the batch goes on
                failure = record_case_failure(out_case, exc)
                print(f"case {folder.name} failed ({failure['kind']}), skipped: {failure['error']}")
    failures = case_failures(out)  # the report merges everything under out/cases, so it counts all of it
    if args.shard != "0/1" and not args.merge_only:
        failures = [f for f in failures if f["case"] in {folder.name for folder in folders}]
    if args.shard != "0/1" and not args.merge_only:
        print(json.dumps({"shard": args.shard, "failures": failures}))
        return failure_exit_code(failures)
    atomic_write_text(out / "failures.json", json.dumps(failures, indent=1))
    report = write_report(out, budget=args.budget, failures=failures)
    print(json.dumps({"report": str(report), "failures": failures}))
    return failure_exit_code(failures)
