"""Write the README's figures from their result files, so that no figure a file holds is typed by hand.

    python scripts/readme_figures.py           # rewrite README.md's generated blocks from benchmarks/results/
    python scripts/readme_figures.py --check   # exit 1, showing the difference, when README.md is not current

Each generated block stands between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->` (a table, a
paragraph, or the inside of one table cell) and is the output of the function NAME below applied to
benchmarks/results/NAME.json; the words around the numbers live here. Run it after a benchmark rewrites
its result file (Testing/test_readme_figures.py fails until then).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import re
import sys
import textwrap
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- figures:(?P<name>[a-z_]+) -->)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)


def _link(name: str, suffix: str = "json") -> str:
    return f"[benchmarks/results/{name}.{suffix}](benchmarks/results/{name}.{suffix})"


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=105, break_long_words=False, break_on_hyphens=False)


def fault_injection(r: dict) -> str:
    points = ", ".join(f"`{p}`" for p in r["points"])
    rows = [f"| figure ({_link('fault_injection')}) | value |", "|---|---|",
            f"| write points with faults injected | {len(r['points'])} ({points}) |",
            f"| faults injected | {r['faults_injected']} |",
            f"| survived (every check above held after the restart) | {r['survived']} |",
            f"| corrections lost | {r['corrections_lost']} |"]
    rows += [f"| … {kind} | {n} |" for kind, n in r["by_kind"].items()]
    counted = "" if r.get("tally") == "from the checks" else (
        " These figures predate the tally that counts a fault as survived only after its checks passed "
        "(before it, most kinds were counted as survived when the fault was made); the next run recounts them.")
    return ("\n\n" + "\n".join(rows) + "\n\n" + _wrap(f"Reproduce: `{r['command']}` ({r['minutes']} min on 2 shared "
                                                           f"cores; the non-slow part runs in CI).{counted}") + "\n\n")


def finetune_loo(r: dict) -> str:
    regions = ("WT", "TC", "ET")
    rows = ["| held-out case | region | Dice before → after | slices to 0.80 | seconds to 0.80 | slices to 0.90 "
            "| seconds to 0.90 |", "|---|---|---|---|---|---|---|"]
    for case in r["cases"]:
        for region in regions:
            b, a = case["before"][region], case["after"][region]
            rows.append(f"| {case['held_out']} | {region} | {b['dice']:.3f} → {a['dice']:.3f} | "
                        + " | ".join(f"{b[key]} → {a[key]}" for key in
                                     ("slices_to_0.80", "seconds_to_0.80", "slices_to_0.90", "seconds_to_0.90")) + " |")
    cases = sorted(r["cases"], key=lambda c: c["fold"])
    n = len(cases)
    cpu = [c["fine_tune_cpu_seconds"] for c in cases]
    wall = [c["fine_tune_wall_seconds"] for c in cases]
    analyses = {c["fold"]: c["analysis_wall_seconds"] for c in cases}
    first, later = analyses[cases[0]["fold"]].values(), [s for c in cases[1:] for s in analyses[c["fold"]].values()]
    gains = {g: [c["after"][g]["dice"] - c["before"][g]["dice"] for c in cases] for g in regions}

    def fewer(region: str, key: str) -> int:
        return sum(c["after"][region][key] < c["before"][region][key] for c in cases)

    def raised(region: str) -> str:
        up = [g for g in gains[region] if g > 0]
        by = "" if not up else f" (by {min(up):.3f})" if len(up) == 1 else f" (by {min(up):.3f}-{max(up):.3f})"
        return f"of {region} on {len(up)}/{n} held-out cases{by}"

    pre = r["preprocessing"]
    preprocessing = (f"{pre['fingerprint_wall_seconds']} s + {pre['preprocessing_wall_seconds']} s"
                     if "fingerprint_wall_seconds" in pre else f"within fold 0's {pre['wall_seconds_with_fold_0']} s")
    text = (f"Fine-tune of one fold (3 training cases, {r['settings']['epochs'] * r['settings']['iterations_per_epoch']} "
            f"iterations at 2 mm, tiny network): **{min(cpu):.0f}-{max(cpu):.0f} CPU seconds** (all child processes: "
            f"the trainer with 2 torch threads and its augmentation worker; {', '.join(f'{s:.0f}' for s in cpu)} s for "
            f"folds {cases[0]['fold']}-{cases[-1]['fold']}, the first ones on the loaded machine), "
            f"{min(wall):.0f}-{max(wall):.0f} s wall; fingerprint + preprocessing of the {n} cases with the moved plans, "
            f"once: {preprocessing} wall; one analysis of a "
            f"240×240×155 case (one network, no mirroring) {min(later):.0f}-{max(later):.0f} s wall for folds "
            f"{cases[1]['fold']}-{cases[-1]['fold']} ({min(first):.0f}-{max(first):.0f} s for fold {cases[0]['fold']} "
            f"on the loaded machine). {n} cases and {r['settings']['epochs'] * r['settings']['iterations_per_epoch']} "
            f"iterations are no evidence of a general gain, and the result is mixed: the fine-tune raised the Dice "
            f"{raised('WT')}, {raised('ET')} and {raised('TC')}; the simulated effort to "
            f"reach Dice 0.80 fell for " + "; ".join(
                f"{g} in slices on {fewer(g, 'slices_to_0.80')}/{n} cases and in seconds on "
                f"{fewer(g, 'seconds_to_0.80')}/{n}" for g in regions) + ".")
    return "\n\n" + "\n".join(rows) + "\n\n" + _wrap(text) + "\n\n"


#: Table cells of the README's *Measured* table: the words, with the result file's keys where its numbers go.
INFERENCE = (
    "median {iwuo_analyze_seconds_median:.1f} s vs {nnunet_predict_seconds_median:.1f} s: **time ratio "
    "{time_ratio_median}** (range {time_ratio_range[0]}–{time_ratio_range[1]}); peak RSS of the largest single "
    "process (not the process tree: nnU-Net's workers are not added) {iwuo_peak_rss_mb_median:.0f} MB vs "
    "{nnunet_peak_rss_mb_median:.0f} MB: **memory ratio {memory_ratio_median}** (range "
    "{memory_ratio_range[0]}–{memory_ratio_range[1]}); goal ≤ 1.15 and ≤ 1.5. nnU-Net's own command spends extra "
    "time on its worker processes")
REPLAY = (
    "precomputation (scores incl. the noticed gain, the perfect expert's and one correcting-expert draw's outcome and "
    "added path length of every slice, once) {precompute_seconds:.1f} s; {curves} curves (7 strategies, random × 20 "
    "seeds, 2 experts, 3 regions, per-region rankings) in **{replay_cpu_seconds_all_curves:.3f} s CPU** "
    "({replay_seconds_all_curves:.2f} s wall, measured at load average {load_average_1min} on the 2 cores); one expert "
    "draw as the evaluation replays it ({strategies} strategies, random baselines × {random_seeds} seeds, 3 regions, "
    "slice and time axes, oracles re-ranked) {replay_seconds_per_expert_draw:.1f} s wall; another correcting-expert "
    "draw (belief and pieces) and its outcome {correcting_draw_and_outcome_seconds:.1f} s; its {grid_cells}-cell "
    "sensitivity grid {sensitivity_grid_seconds_per_draw:.1f} s; brute-force voxel replay "
    "{brute_force_seconds_per_curve:.1f} s per curve ({speedup_vs_brute_force:,.0f}× slower than the {curves}-curve "
    "replay per curve)")
WEB_REVIEW_CASE = (
    "**{case}** ({grid} voxels): `iwuo review` start on the analysed case {server_start_s:.1f} s; first frame "
    "{first_frame_s:.1f} s after page load; **Next → new rank and its image shown {next_ms:.0f} ms** (rank text "
    "alone {next_rank_only_ms:.0f} ms) vs {go_to_ms:.2f} ms for `ReviewSession.go_to` in-process; **stroke release → "
    "BudgetLog line {stroke_to_log_ms:.0f} ms** (budget text in the page {stroke_to_page_ms:.0f} ms) vs "
    "{edit_and_flush_ms:.1f} ms in-process for a brush-sized edit + `flush_edits` (saves the corrected label map, "
    "then logs)")


def inference(r: dict) -> str:
    return INFERENCE.format(**r)


def replay(r: dict) -> str:
    return REPLAY.format(**r)


def web_review(r: dict) -> str:
    cases = "; ".join(WEB_REVIEW_CASE.format(**case) for case in r["cases"])
    load = ", ".join(f"{v:.2f}" for v in r["load_average_1_5_15"])
    return (f"{cases} (medians of 10 Next / 3 strokes, timed in the page; load average {load} (1, 5, 15 min) on "
            f"{r['cpu_count']} cores when measured)")


def mutations(r: dict) -> str:
    return (f"[{r['mutations']} mutations, {r['caught']} caught](benchmarks/results/mutations.md) "
            f"({r['seconds_of_the_mutations'] / 60:.0f} min of test runs on {r['machine']['cpu_count']} shared cores)")


def _before_after(values: dict, key: str, digits: int) -> str:
    return f"{values['before'][key]:.{digits}f} → {values['after'][key]:.{digits}f}"


def _fell(folds: list, region: str, measure: str) -> int:
    return sum(f["regions"][region][f"{measure}_after"] < f["regions"][region][f"{measure}_before"] for f in folds)


def _interval_r(r: float, n: int) -> tuple[float, float]:
    """95 % interval of a Pearson r over n points (Fisher z)."""
    import math

    z, half = math.atanh(max(min(r, 0.999999), -0.999999)), 1.96 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def _pearson_sign(r: dict, regions: list[str]) -> str:
    """Why Pearson r of expected vs measured Dice changes sign (bench_calibration.sign_flip_diagnostic)."""
    d, n, summary = r["pearson_r_diagnostic"], len(r["folds"]), r["summary"]
    flipped = [g for g in regions if summary[g]["before"]["pearson_r"] > 0 > summary[g]["after"]["pearson_r"]]
    same = {g: d[g]["pearson_r_one_calibration_for_all"] for g in regions}
    levels, within = {}, {}
    for g in regions:  # the matrix: calibration (by its held-out case) -> case -> expected Dice
        rows = [list(by_case.values()) for by_case in d[g]["expected_dice_matrix"].values()]
        levels[g] = max(map(fmean, rows)) - min(map(fmean, rows))
        within[g] = fmean(max(row) - min(row) for row in rows)
    mass = max(v for g in regions for v in d[g]["unreviewed_probability_mass_share"].values())
    first = summary[regions[0]]["before"]["pearson_r"]
    low, high = _interval_r(first, n)
    kept = "keeps r positive" if all(v > 0 for g in regions for v in same[g]) else "gives r of"
    return _wrap(
        f"Why Pearson r changed sign ({', '.join(flipped) or 'none did'}): not because the expected Dice is computed "
        "on the whole volume of calibrated probabilities (on the reviewed slices only, the held-out r is "
        + ", ".join(f"{g} {d[g]['pearson_r_held_out_reviewed_slices_only']:.2f}" for g in regions)
        + f"; at most {mass:.1%} of the calibrated probability mass lies outside them), but because each case is "
        f"calibrated by its own fit on the other {n - 1}: any one fold's calibration applied to all {n} cases {kept} ("
        + ", ".join(f"{g} {min(same[g]):.2f} to {max(same[g]):.2f}" for g in regions)
        + "), while the folds' calibrations differ in level (their mean expected Dice over the cases spans "
        + ", ".join(f"{g} {levels[g]:.2f}" for g in regions)
        + "; under one calibration the cases span "
        + ", ".join(f"{g} {within[g]:.2f}" for g in regions)
        + f"), so the held-out ordering follows which case each fit left out. Over {n} points r is uncertain anyway "
        f"({regions[0]} before: {first:.2f}, 95 % interval {low:.2f} to {high:.2f}); nothing was tuned on these "
        "numbers (`pearson_r_diagnostic` in the JSON).")


def _ranking_before_after(r: dict, cases: list[str], regions: list[str]) -> list[str]:
    """The default ranking's nAUBC on the time axis before and after calibration, per held-out case and the mean."""
    folds, mean = r["folds"], r["naubc_seconds_mean"]
    ranking = r["settings"]["ranking"].split(" ")[0]
    head = " | ".join(regions)
    table = [f"| held-out case | nAUBC, mean over regions: before → after | {head} |",
             "|---|---|" + "---|" * len(regions)]

    def row(label: str, values: dict) -> str:
        cells = " | ".join(f"{values['before'][g]:.3f} → {values['after'][g]:.3f}" for g in regions)
        return f"| {label} | {values['before']['mean']:.3f} → {values['after']['mean']:.3f} | {cells} |"

    table += [row(case, f["naubc_seconds"]) for case, f in zip(cases, folds)]
    table.append(row("**mean**", mean))
    better = sum(f["naubc_seconds"]["after"]["mean"] > f["naubc_seconds"]["before"]["mean"] for f in folds)
    seeds = r["settings"].get("random_seeds", 2000)
    return [_wrap(f"The default ranking (`{ranking}`, ranking/strategies.DEFAULT_RANKING) replayed by `iwuo evaluate "
                  f"--replay-only`'s own code without (before) and with (after) `--calibration`: nAUBC on the time axis, "
                  f"correcting expert, {r['settings']['ranking'].split('correcting expert, ')[1].split(' (the')[0]}, "
                  f"random baseline over {seeds} orderings, 600 s, 0 = random and 1 = the time oracle (oracle_time), "
                  "label map and expert outcomes identical before and after (only the ranking's scores change):"),
            "\n".join(table),
            _wrap(f"Calibration raised the default ranking's nAUBC (mean over regions) on {better} of {len(folds)} "
                  f"held-out cases; the mean went from {mean['before']['mean']:.3f} to {mean['after']['mean']:.3f}. The "
                  "uncalibrated values equal the protocol evaluation's own per-case values (checked: "
                  f"{'yes on every case' if all(f.get('before_equals_the_protocol_evaluation') for f in folds) else 'NO'}).")]


def calibration(r: dict) -> str:
    folds, summary = r["folds"], r["summary"]
    cases = [f["held_out"].replace("brats_2013_", "").replace("_1", "") for f in folds]
    seconds = [f["calibrate_wall_seconds"] for f in folds]
    intro = _wrap(
        f"Leave one case out on the 4 real BraTS-2015 cases ({_link('calibration')}, `benchmarks/bench_calibration.py`, "
        f"{r['wall_seconds'] / 60:.0f} min): `iwuo calibrate`'s fit on 3 finished reviews (each case's expert reference "
        "as its corrections; every slice with reference or predicted tumour counts as reviewed, the whole tumour "
        f"extent: {min(r['reviewed_slices'].values())}-{max(r['reviewed_slices'].values())} slices a case), applied "
        "to the 4th case's 16-member analysis (label map unchanged: "
        f"{'yes' if all(f['label_map_unchanged'] for f in folds) else 'NO'} on every case). Expected Dice: the "
        "product's, from the probabilities of the whole volume; log loss and ECE: the mean over the held-out cases "
        "of each one's reviewed voxels (a weighted stratified sample, as the fit's own held-out report). The fit took "
        f"{min(seconds):.0f}-{max(seconds):.0f} s on 3 reviews (wall, shared cores).")
    rows = ["| structure | expected vs measured Dice: MAE | Pearson r | log loss | ECE | method chosen, held-out "
            f"{', '.join(cases)} |", "|---|---|---|---|---|---|"]
    for region, values in summary.items():
        rows.append(f"| {region} | {_before_after(values, 'mae', 3)} | {_before_after(values, 'pearson_r', 2)} | "
                    f"{_before_after(values, 'mean_log_loss', 4)} | {_before_after(values, 'mean_ece', 4)} | "
                    f"{', '.join(values['methods'])} |")
    regions = list(summary)
    fell = "; ".join(f"{region} {_fell(folds, region, 'log_loss')}/{len(folds)} and {_fell(folds, region, 'ece')}/"
                     f"{len(folds)}" for region in regions)
    closer = sum(abs(f["regions"][g]["expected_dice_after"] - f["regions"][g]["measured_dice"])
                 < abs(f["regions"][g]["expected_dice_before"] - f["regions"][g]["measured_dice"])
                 for f in folds for g in regions)
    r_rose = [g for g in regions if summary[g]["after"]["pearson_r"] > summary[g]["before"]["pearson_r"]]
    text = _wrap(f"Held-out log loss and ECE fell on (cases): {fell}. The expected Dice came closer to the measured "
                 f"one in {closer} of {len(folds) * len(regions)} case-structure pairs; its Pearson r across the "
                 f"{len(folds)} cases rose for {len(r_rose)} of {len(regions)} structures"
                 f"{' (' + ', '.join(r_rose) + ')' if r_rose else ''}.")
    out = [intro, "\n".join(rows), text,
           "![reliability before and after, pooled over the 4 held-out cases](benchmarks/results/calibration_reliability.png)"]
    if "pearson_r_diagnostic" in r:
        out.append(_pearson_sign(r, regions))
    if "naubc_seconds_mean" in r:
        out += _ranking_before_after(r, cases, regions)
    out.append(_wrap(f"Time model: {r['settings']['time_model']}."))
    return "\n\n" + "\n\n".join(out) + "\n\n"


EVALUATION = ROOT / "docs" / "evaluation"
EVALUATION_SETS = ("development/phantoms", "development/brats", "confirmation/phantoms", "confirmation/brats")


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def evaluation_results(folder: Path = EVALUATION) -> dict:
    """The four reports' tables that the README quotes (the primary endpoint, the default's tests, the grid)."""
    data = {}
    for name in EVALUATION_SETS:
        summary = [r for r in _csv(folder / name / "summary.csv") if r["region"] == "mean"]
        tests = [r for r in _csv(folder / name / "statistics.csv")
                 if (r["region"], r["expert"], r["axis"]) == ("mean", "noisy", "seconds")]
        per_case = [r for r in _csv(folder / name / "results_per_case.csv") if (r["region"], r["expert"]) == ("mean", "noisy")]
        data[name] = {"summary": summary, "tests": tests, "grid": _csv(folder / name / "sensitivity.csv"),
                      "per_case": per_case}
    return data


def _top_group(summary: list[dict], per_case: list[dict]) -> tuple[str, list[str]]:
    """The protocol's best ranking and top group (simulation/statistics.top_group, as the report computes them) from
    the primary endpoint's pooled values and per-case AUBC."""
    from IWUOSegmentationLib.simulation.statistics import top_group
    from IWUOSegmentationLib.simulation.summary import gt_free_family

    pooled = {r["strategy"]: float(r["pooled_naubc_seconds"]) for r in summary if r["expert"] == "noisy"}
    cases = sorted({r["case"] for r in per_case})
    aubc = {(r["strategy"], r["case"]): float(r["aubc_seconds"]) for r in per_case}
    family = gt_free_family(pooled)
    return top_group(pooled, {s: [aubc[s, c] for c in cases] for s in family}, family)


def _endpoint(rows: list[dict], expert: str) -> dict[str, tuple[float, str]]:
    return {r["strategy"]: (float(r["pooled_naubc_seconds"]), r["pooled_naubc_seconds_interval"])
            for r in rows if r["expert"] == expert}


def _default_test(tests: list[dict], other: str) -> tuple[float, float]:
    """The default's mean per-case AUBC difference to `other` and its Holm-adjusted p (the protocol's test)."""
    row = next(r for r in tests if r["comparison"].split(" vs ")[1] == other)
    return float(row["mean_aubc_difference"]), float(row["p_holm"])


def evaluation(r: dict) -> str:
    """The four sets' primary endpoint side by side, and the protocol's verdict computed from the confirmation tests."""
    default = r["confirmation/phantoms"]["grid"][0]["default"]
    noisy = {name: _endpoint(r[name]["summary"], "noisy") for name in EVALUATION_SETS}
    perfect = {name: _endpoint(r[name]["summary"], "perfect") for name in EVALUATION_SETS}
    order = sorted(noisy["development/phantoms"], key=lambda s: -noisy["development/phantoms"][s][0])
    lines = ["| ranking | " + " | ".join(n.replace("/", " ") for n in EVALUATION_SETS) + " |",
             "|---|" + "---|" * len(EVALUATION_SETS)]
    for strategy in order:
        cells = [f"{noisy[n][strategy][0]:.3f} {noisy[n][strategy][1]}" for n in EVALUATION_SETS]
        name = f"**{strategy}** (default)" if strategy == default else strategy
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    conf = r["confirmation/phantoms"]
    best, group = _top_group(conf["summary"], conf["per_case"])
    in_top = default in group
    beats = {b: _default_test(conf["tests"], b) for b in ("random", "tumour_first_random")}
    confirmed = in_top and all(d > 0 and p < 0.05 for d, p in beats.values())
    tests = "; ".join(f"vs `{b}` {d:+.4f} mean AUBC, Holm p = {p:.2g}" for b, (d, p) in beats.items())
    brats = {s: v for s, v in noisy["confirmation/brats"].items() if not s.startswith("oracle")}
    brats_best = max(brats, key=lambda s: brats[s][0])
    brats_cases = r["confirmation/brats"]["summary"][0]["cases"]
    grid_words = []
    for name in EVALUATION_SETS:
        grid = r[name]["grid"]
        in_grid = sum(c["default_in_top_group"] == "True" for c in grid)
        random_top = sum("random" in c["top_group"].split() for c in grid)
        grid_words.append(f"{name.replace('/', ' ')} {in_grid}/{len(grid)} (random itself in the top group in {random_top})")
    perfect_best = max((s for s in perfect["confirmation/phantoms"] if not s.startswith("oracle")),
                       key=lambda s: perfect["confirmation/phantoms"][s][0])
    outcome = "lost" if brats_best != default else "was the best"
    verdict = (f"**Verdict on the {conf['summary'][0]['cases']} confirmation phantoms: "
               f"{'confirmed' if confirmed else 'not confirmed'}.** "
               f"(a) `{default}` {'is' if in_top else 'is not'} in the top group (best: `{best}`, "
               f"{noisy['confirmation/phantoms'][best][0]:.3f}); (b) {tests}. "
               f"**On the {brats_cases} confirmation BraTS cases the default {outcome}:** `{default}` "
               f"{brats[default][0]:.3f} {brats[default][1]} against `{brats_best}` {brats[brats_best][0]:.3f} "
               f"{brats[brats_best][1]}, and {'below' if brats[default][0] < brats['tumour_first_random'][0] else 'above'} "
               f"`tumour_first_random` ({brats['tumour_first_random'][0]:.3f}); "
               f"with {brats_cases} cases this neither confirms nor refutes "
               f"(smallest Holm p there: {min(float(t['p_holm']) for t in r['confirmation/brats']['tests']):.2g}), "
               "but it is the result. "
               f"**With the perfect expert** on the confirmation phantoms: `{default}` "
               f"{perfect['confirmation/phantoms'][default][0]:.3f} against the best, `{perfect_best}`, "
               f"{perfect['confirmation/phantoms'][perfect_best][0]:.3f} (the default ranks what a correcting clinician "
               f"notices, not what a perfect one fixes). Default in the sensitivity grid's top group (cells): "
               + "; ".join(grid_words) + ".")
    return "\n".join(lines) + "\n\n" + _wrap(verdict) + "\n"


BLOCKS = {f.__name__: f for f in (fault_injection, finetune_loo, inference, replay, web_review, mutations, calibration,
                                  evaluation)}
LOADERS = {"evaluation": evaluation_results}


def results(names, folder: Path = RESULTS) -> dict[str, dict]:
    """The result file of each named block (the evaluation's: its reports' CSV tables)."""
    return {name: LOADERS[name]() if name in LOADERS else json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
            for name in names}


def render(text: str, data: dict[str, dict]) -> str:
    """`text` with every generated block written from `data` (name -> the result file's contents)."""
    return BLOCK.sub(lambda m: m.group(1) + BLOCKS[m.group("name")](data[m.group("name")]) + m.group(4), text)


def block_names(text: str) -> list[str]:
    return [m.group("name") for m in BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether README.md is current (exit 1 if not)")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = render(text, results(block_names(text)))
    if args.check:
        diff = list(difflib.unified_diff(text.splitlines(), new.splitlines(), "README.md", "generated", lineterm=""))
        print("\n".join(diff) if diff else "README.md figures are current")
        return 1 if diff else 0
    if new != text:
        README.write_text(new, encoding="utf-8")
    print(f"README.md: {len(block_names(new))} generated blocks ({', '.join(block_names(new))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
