"""Benchmark: `iwuo analyze` (flip + fold members, uncertainty maps) against `nnUNetv2_predict`.

    python benchmarks/bench_inference.py [--repeats 2] [--model DIR] [--device cpu]

Same phantom case, same model folder and folds, nnU-Net with its default test-time mirroring;
each command runs in its own child process tree (wall time; peak RSS = the largest process of
that tree, from getrusage of a fresh wrapper). Prints the ratios and writes
benchmarks/results/inference.json. Goal: time ratio <= 1.15, memory ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
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
    from IWUOSegmentationLib.demo_model import demo_model_folder
    from IWUOSegmentationLib.model_folder import open_model
    from IWUOSegmentationLib.phantom import write_phantoms

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
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
    for _ in range(args.repeats):
        runs["nnunet"].append(measure(nn_cmd, env))
        runs["iwuo"].append(measure(iwuo_cmd, env))
    best = {k: (min(t for t, _ in v), max(m for _, m in v)) for k, v in runs.items()}
    result = {
        "case": "phantom seed 5 (2 mm, 80x94x77)", "model": str(model.path.name), "folds": model.folds,
        "device": args.device, "repeats": args.repeats,
        "nnunet_predict_seconds": round(best["nnunet"][0], 2), "iwuo_analyze_seconds": round(best["iwuo"][0], 2),
        "time_ratio": round(best["iwuo"][0] / best["nnunet"][0], 3),
        "nnunet_peak_rss_mb": round(best["nnunet"][1], 1), "iwuo_peak_rss_mb": round(best["iwuo"][1], 1),
        "memory_ratio": round(best["iwuo"][1] / best["nnunet"][1], 3),
        "all_runs": {k: [[round(t, 2), round(m, 1)] for t, m in v] for k, v in runs.items()},
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / "inference.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
