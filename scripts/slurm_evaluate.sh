#!/bin/bash
# `iwuo evaluate` on a SLURM cluster: one job array, each task evaluates every n-th case into the same
# output folder (each locks only its own shard), then one dependent job merges the results into the report.
#
#   jobid=$(sbatch --parsable --array=0-7 scripts/slurm_evaluate.sh CASES_DIR OUT_DIR [iwuo evaluate options])
#   sbatch --dependency=afterany:$jobid scripts/slurm_evaluate.sh --merge-only OUT_DIR [report options]
#
# Task i of an array of n runs `iwuo evaluate --cases CASES_DIR --out OUT_DIR --shard i/n ...` (i counted from
# the array's first index, so --array=1-8 works too). afterany: the merge runs even when a shard failed; a
# failed case is listed in report.md and failures.json, and the merge's exit code says so. Re-submitting the
# array resumes: finished cases are reused.
#
# EVALUATE is the command that takes `iwuo evaluate`'s options (default: iwuo evaluate). For Slicer's Python
# (headless, no torch install of your own), export before sbatch:
#   export EVALUATE="Slicer --no-main-window --python-script <module folder>/IWUOSegmentationLib/cli/slicer_headless_evaluate.py --"
# Adapt the #SBATCH lines (or override them on the sbatch command line) to your cluster.
#SBATCH --job-name=iwuo-evaluate
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --output=iwuo-evaluate-%A_%a.log
set -euo pipefail

read -r -a evaluate <<< "${EVALUATE:-iwuo evaluate}"
if [[ "${1:-}" == "--merge-only" ]]; then
    [[ $# -ge 2 ]] || { echo "usage: $0 --merge-only OUT_DIR [report options]" >&2; exit 2; }
    out=$2
    shift 2
    exec "${evaluate[@]}" --out "$out" --merge-only "$@"
fi
[[ $# -ge 2 ]] || { echo "usage: sbatch --array=0-N $0 CASES_DIR OUT_DIR [iwuo evaluate options]" >&2; exit 2; }
[[ -n "${SLURM_ARRAY_TASK_ID:-}" ]] || { echo "error: not a job-array task; submit with sbatch --array=0-N" >&2; exit 2; }
cases=$1
out=$2
shift 2
shard=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
exec "${evaluate[@]}" --cases "$cases" --out "$out" --shard "$shard/${SLURM_ARRAY_TASK_COUNT}" "$@"
