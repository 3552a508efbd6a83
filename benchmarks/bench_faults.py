"""Figures of the fault-injection suite: write points, faults injected, survived, corrections lost.

    python benchmarks/bench_faults.py

Runs Testing/test_fault_injection.py with its slow cases (`iwuo analyze` and `iwuo evaluate` killed at
random moments and resumed) and the one-writer tests of Testing/test_review_lock.py; the suite tallies
every fault it injects and counts it as survived only once its checks have passed. Writes
benchmarks/results/fault_injection.json; `python scripts/readme_figures.py` then writes the README's
"Guarantees" table from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "fault_injection.json"


def main() -> int:
    tally = RESULT.with_suffix(".partial.json")
    tally.unlink(missing_ok=True)
    start = time.time()
    env = {**os.environ, "IWUO_FAULT_FIGURES": str(tally),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "IWUOSegmentation"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow or not slow",
                          "Testing/test_fault_injection.py", "Testing/test_review_lock.py"], cwd=ROOT, env=env)
    figures = json.loads(tally.read_text())
    tally.unlink()
    figures.update({"write_points": len(figures["points"]), "all_tests_passed": run.returncode == 0,
                    "tally": "from the checks",  # a fault counts as survived only after its checks passed
                    "minutes": round((time.time() - start) / 60, 1),
                    "command": "python benchmarks/bench_faults.py"})
    RESULT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
