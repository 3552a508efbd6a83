"""Benchmark: `iwuo analyze` (flip + fold members, uncertainty maps) against `nnUNetv2_predict`.

    python benchmarks/bench_inference.py [--repeats 3] [--model DIR] [--device cpu]

Same phantom case, same model folder and folds, nnU-Net with its default test-time mirroring;
each command runs in its own child process tree. Runs are paired (one nnU-Net run and one iwuo
run back to back, the order alternating between pairs), and the ratios are taken within each pair,
so a machine busy with other work slows both sides of a pair alike. Reported: the median over
the pairs of the time and memory ratios, with their min-max spread, and the median seconds.
Memory is the peak RSS of the LARGEST SINGLE PROCESS of each command's tree (getrusage
RUSAGE_CHILDREN of a fresh wrapper), not the sum over the tree: nnU-Net's worker processes are
not added to its figure. Writes benchmarks/results/inference.json, with the machine's load
average, since other work on the machine skews the seconds. Goal: time ratio <= 1.15, memory
ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ("import resource, subprocess, sys, json; p = subprocess.run(sys.argv[1:]); "
           "print(json.dumps({'rc': p.returncode, 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def measure(cmd: list[str], env: dict) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    if last["rc"] != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-1500:]}")
    return seconds, last["maxrss_kb"] / 1024.0


def main() -> None:
    from IWUOSegmentationLib.data.phantom import write_phantoms
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="paired runs (at least 3 for a median and spread)")
    parser.add_argument("--model", default=str(demo_model_folder()))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = open_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="iwuo_bench_"))
    write_phantoms(work / "case", 1, seed=5, layout="cases")
    case = work / "case" / "phantom_0005"
    nn_in = work / "nn_in"
    nn_in.mkdir()
    for i, channel in enumerate(model.channel_names):
        os.symlink(case / f"{channel}.nii.gz", nn_in / f"case_{i:04d}.nii.gz")
    env = dict(os.environ, nnUNet_def_n_proc="2")
    nn_cmd = [sys.executable, "-c", "import sys; from nnunetv2.inference.predict_from_raw_data import "
              "predict_entry_point_modelfolder as m; sys.argv[0] = 'nnUNetv2_predict_from_modelfolder'; m()",
              "-i", str(nn_in), "-o", str(work / "nn_out"), "-m", str(model.path), "-f", *model.folds,
              "-device", args.device]
    iwuo_cmd = [sys.executable, "-m", "IWUOSegmentationLib.cli", "--progress", "none", "analyze", "--model",
                str(model.path), "--input", *[str(case / f"{c}.nii.gz") for c in model.channel_names], "--output",
                str(work / "iwuo_out"), "--device", args.device, "--members", "flips,folds"]
    runs = {"nnunet": [], "iwuo": []}
    load_before = os.getloadavg()
    for pair in range(args.repeats):
        order = [("nnunet", nn_cmd), ("iwuo", iwuo_cmd)]
        for name, cmd in order if pair % 2 == 0 else order[::-1]:
            runs[name].append(measure(cmd, env))
    time_ratios = [i[0] / n[0] for i, n in zip(runs["iwuo"], runs["nnunet"])]
    memory_ratios = [i[1] / n[1] for i, n in zip(runs["iwuo"], runs["nnunet"])]
    median = lambda values: float(statistics.median(values))  # noqa: E731
    result = {
        "case": "phantom seed 5 (2 mm, 80x94x77)", "model": str(model.path.name), "folds": model.folds,
        "device": args.device, "paired_runs": args.repeats,
        "nnunet_predict_seconds_median": round(median([t for t, _ in runs["nnunet"]]), 2),
        "iwuo_analyze_seconds_median": round(median([t for t, _ in runs["iwuo"]]), 2),
        "time_ratio_median": round(median(time_ratios), 3),
        "time_ratio_range": [round(min(time_ratios), 3), round(max(time_ratios), 3)],
        "nnunet_peak_rss_mb_median": round(median([m for _, m in runs["nnunet"]]), 1),
        "iwuo_peak_rss_mb_median": round(median([m for _, m in runs["iwuo"]]), 1),
        "memory_ratio_median": round(median(memory_ratios), 3),
        "memory_ratio_range": [round(min(memory_ratios), 3), round(max(memory_ratios), 3)],
        "memory_measure": "peak RSS of the largest single process of each command's process tree (not the tree's sum)",
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpu_count": os.cpu_count(),
        "all_runs_seconds_mb": {k: [[round(t, 2), round(m, 1)] for t, m in v] for k, v in runs.items()},
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "inference.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
