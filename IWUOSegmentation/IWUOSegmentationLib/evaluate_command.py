"""`iwuo evaluate`: analyse many cases, replay strategies with simulated experts, report.

Each case's results are saved as soon as it finishes (cases/<name>/evaluation.json), so a
re-run resumes (a result file that cannot be read back is redone). A failing case does not stop
the batch, but it is never silent: it is listed in report.md, in failures.json and in the printed
JSON, as bad input (the case's files: fix them) or as an internal error (a bug: the traceback is
in cases/<name>/error.txt), and the command exits non-zero (1 if any internal error, else the bad
case's code, 2). `--shard i/n` takes every n-th case starting at i (a cluster job array), and
`--merge-only` builds the tables, statistics, plots and report from whatever per-case results exist.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import numpy as np

from .errors import BadInputError, BadModelError, CancelledError, IWUOError, OutOfMemoryError
from .io_atomic import atomic_write_text


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="Dice-vs-budget evaluation of ranking strategies on cases with a reference")
    p.add_argument("--cases", nargs="+", default=[], help="folders of case folders (images + reference label)")
    p.add_argument("--model", default=None, help="model folder (default: bundled demo model)")
    p.add_argument("--configuration", default=None)
    p.add_argument("--folds", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--strategies", default="iwuo,uncertainty,impact,random,fixed_interval,largest_area,oracle")
    p.add_argument("--expert", default="perfect,noisy")
    p.add_argument("--regions", default="auto",
                   help="regions to score: auto (WT,TC,ET for a BraTS model, else each of the model's labels/regions "
                        "and all foreground), or names of the model's structures")
    p.add_argument("--label-convention", default=None,
                   help="labels of the reference files when they are not the model's own: brats2013 (2013-2015), "
                        "brats2021 (2017-2021) or brats2023 (2023-2024)")
    p.add_argument("--uncertainty-map", default="entropy",
                   choices=["entropy", "variance", "mutual_information", "disagreement"])
    p.add_argument("--budget", type=int, default=None, help="slice budget for the report (default: all slices)")
    p.add_argument("--seconds-budget", type=float, default=300.0,
                   help="time budget (s) under the expert time model: Dice reached within it is reported")
    p.add_argument("--target-dice", type=float, default=0.9)
    p.add_argument("--random-seeds", type=int, default=20)
    p.add_argument("--members", default="flips,folds")
    p.add_argument("--disable-tta", action="store_true", help="no test-time mirroring (8x faster; no flip members)")
    p.add_argument("--device", default="auto")
    p.add_argument("--shard", default="0/1", help="i/n: evaluate cases i, i+n, i+2n, ...")
    p.add_argument("--merge-only", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def _region_names(regions) -> list[str] | None:
    """None (auto) or the region names asked for."""
    if regions is None or list(regions) in (["auto"], ["AUTO"]) or regions == "auto":
        return None
    return [r for r in regions if r]


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
    from .review_lock import LOCK_FILE, lock_folder

    sharded = shard != "0/1" and not merge_only
    if sharded:
        _shard([], shard)  # refuse a malformed --shard before it names a file
    name = f".iwuo.shard-{shard.replace('/', '-of-')}.lock" if sharded else LOCK_FILE
    return lock_folder(out, f"iwuo evaluate --shard {shard}" if sharded else "iwuo evaluate", what="evaluation",
                       name=name)


def evaluate_folder_case(folder: Path, model, predictor, out_case: Path, options: dict, progress=None) -> dict:
    """Analyse (or reuse the analysis of) one case folder and replay all strategies on it."""
    import SimpleITK as sitk

    from .analysis_files import read_analysis, write_analysis
    from .case_folders import find_case_files
    from .evaluation import evaluate_case
    from .inference import CaseImages, same_geometry
    from .slice_scores import ScoreOptions, slice_axis
    from .structures import (
        describe_labels,
        detect_convention,
        evaluation_regions,
        reference_label_check,
        reference_values_allowed,
        resolve_convention,
        structures_from_dataset_json,
    )

    files = find_case_files(folder, model.channel_names)
    if files.reference is None:
        raise BadInputError(f"Case {folder.name} has no reference label file (label*, seg*, OTMultiClass*).")
    analysis_dir = out_case / "analysis"
    if not (analysis_dir / "summary.json").is_file():
        case = CaseImages.from_files([str(p) for p in files.images])
        result = predictor.analyze(case, progress=progress)
        write_analysis(result, case, analysis_dir, model.describe())
    analysis = read_analysis(analysis_dir)
    try:
        ref_image = sitk.ReadImage(str(files.reference))
    except RuntimeError as exc:
        raise BadInputError(f"Case {folder.name}: cannot read the reference {files.reference.name}: "
                            f"{str(exc).strip().splitlines()[-1]}") from exc
    if not same_geometry(ref_image, analysis.reference):
        raise BadInputError(f"Case {folder.name}: the reference label's grid ({ref_image.GetSize()}, spacing "
                            f"{ref_image.GetSpacing()}) differs from the images' grid ({analysis.reference.GetSize()}, "
                            f"{analysis.reference.GetSpacing()}); resample it onto the images first.")
    reference = sitk.GetArrayFromImage(ref_image).astype(np.int64)
    structures = structures_from_dataset_json(model.dataset_json)
    convention = options.get("label_convention")
    regions = evaluation_regions(structures, _region_names(options.get("regions")), convention)
    reference_label_check(set(np.unique(reference).tolist()), reference_values_allowed(structures, convention),
                          folder.name, describe_labels(structures, convention))
    axis = slice_axis(analysis.reference.GetSpacing())
    evaluation = evaluate_case(
        folder.name, analysis.label_map, analysis.probabilities, analysis.summary["outputs"],
        analysis.summary["region_based"], analysis.uncertainty[options["uncertainty_map"]], reference, axis,
        regions=regions, strategies=options["strategies"], experts=options["experts"],
        random_seeds=options["random_seeds"], structures=structures,
        options=ScoreOptions(uncertainty_map=options["uncertainty_map"]), spacing_xyz=analysis.reference.GetSpacing(),
        seconds_budget=options.get("seconds_budget", 300.0))
    record = {"case": folder.name, "axis": axis, "n_slices": evaluation.n_slices, "rows": evaluation.rows,
              "metrics_before_correction": evaluation.metrics,
              "curves": {"|".join(k): [round(float(x), 6) for x in v] for k, v in evaluation.curves.items()},
              "analysis_seconds": analysis.summary.get("seconds"),
              "regions": {n: {"structure": r.structure.name, "reference_values": list(r.reference_values)}
                          for n, r in regions.items()},
              "label_convention": resolve_convention(convention) if convention else detect_convention(structures)}
    atomic_write_text(out_case / "evaluation.json", json.dumps(record))
    return record


CASE_RESULT, CASE_ERROR = "evaluation.json", "error.json"
#: What a failed case is listed as; anything else that escapes a case is an internal error (a bug).
FAILURE_KINDS = ((BadInputError, "bad input"), (BadModelError, "bad model"), (OutOfMemoryError, "out of memory"),
                 (IWUOError, "error"))


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


def cmd_evaluate(args) -> int:
    from .case_folders import list_case_folders
    from .cli import Progress, _open_model
    from .inference import MemberPredictor
    from .report import write_report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock_output(out, args.shard, args.merge_only)  # noqa: F841 - held until the command returns
    options = {"strategies": tuple(s.strip() for s in args.strategies.split(",")),
               "experts": tuple(e.strip() for e in args.expert.split(",")),
               "regions": tuple(r.strip() for r in args.regions.split(",")),
               "uncertainty_map": args.uncertainty_map, "random_seeds": args.random_seeds,
               "seconds_budget": args.seconds_budget, "label_convention": args.label_convention}
    progress = Progress(args.progress)
    if not args.merge_only:
        if not args.cases:
            raise BadInputError("Give --cases (folders of case folders) or --merge-only.")
        folders = _shard([f for root in args.cases for f in list_case_folders(root)], args.shard)
        model = _open_model(args)
        from .structures import evaluation_regions, structures_from_dataset_json

        # unknown region names or conventions are refused before any case is analysed
        evaluation_regions(structures_from_dataset_json(model.dataset_json), _region_names(options["regions"]),
                           args.label_convention)
        predictor = MemberPredictor(model, device=args.device, members=tuple(args.members.split(",")),
                                    tta=not args.disable_tta)
        for i, folder in enumerate(folders):
            out_case = out / "cases" / folder.name
            if read_case_result(out_case) is not None:
                progress((i + 1) / len(folders), f"{folder.name}: done before, reused")
                continue
            if (out_case / CASE_RESULT).is_file():
                print(f"case {folder.name}: its saved result cannot be read back; evaluating it again")
            try:
                def case_progress(f, m, i=i, name=folder.name):
                    progress((i + f) / len(folders), f"{name}: {m}")

                evaluate_folder_case(folder, model, predictor, out_case, options, progress=case_progress)
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
    report = write_report(out, budget=args.budget, target_dice=args.target_dice, failures=failures)
    print(json.dumps({"report": str(report), "failures": failures}))
    return failure_exit_code(failures)
