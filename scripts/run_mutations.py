"""Apply each named mutation (Testing/mutation_table.py) to a scratch copy of this checkout and run its tests.

    python scripts/run_mutations.py                 # every mutation; writes benchmarks/results/mutations.{json,md}
    python scripts/run_mutations.py --list          # names, files, tests, and whether each snippet is still there
    python scripts/run_mutations.py --only NAME ... # some of them (prints; writes only with --out)
    python scripts/run_mutations.py --rerun NAME ...# some of them again, replacing their results in the file

The scratch copy holds the checkout's tracked and untracked-but-not-ignored files (what a commit would hold,
uncommitted edits included), beside the checkout (`<checkout>/../.mutations-<pid>/<name>`) with a `shared` link
to `<checkout>/../shared`, so tests that read `../shared/data` find it as they do here. Each mutation replaces
its exact `old` snippet by `new` (a snippet not found exactly once is STALE: a failure, so that a refactor
cannot quietly disable a mutation), runs only its tests with PYTHONPATH on the copy, and puts the file back.
Outcome: CAUGHT when every named test failed (or errored), MISSED when one of them passed, STALE, TIMEOUT, or
ERROR (pytest could not run them). Exit code 0 only when every mutation run was caught.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def load_table(root: Path = ROOT):
    """Testing/mutation_table.py as a module (it is data, not a test)."""
    spec = importlib.util.spec_from_file_location("mutation_table", root / "Testing" / "mutation_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_table"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def mutated_text(text: str, old: str, new: str) -> str | None:
    """`text` with its one occurrence of `old` replaced by `new`; None (stale) unless `old` occurs exactly once."""
    return text.replace(old, new, 1) if text.count(old) == 1 else None


def occurrences(root: Path, mutation) -> int:
    path = root / mutation.file
    return path.read_text(encoding="utf-8").count(mutation.old) if path.is_file() else 0


@dataclass
class Outcome:
    name: str
    outcome: str  # caught, missed, stale, timeout, error
    seconds: float
    tests: list[str]
    failed: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    summary: str = ""
    evidence: str = ""  # the first assertion or error line of the failing run


def checkout_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files that exist (what the checkout is, uncommitted edits included)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def make_scratch(root: Path) -> Path:
    """A copy of the checkout beside it, with `shared` reachable as ../shared from the copy."""
    base = root.parent / f".mutations-{os.getpid()}"
    scratch = base / root.name
    for name in checkout_files(root):
        target = scratch / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    if (root.parent / "shared").exists():
        (base / "shared").symlink_to(root.parent / "shared")
    (base / "home").mkdir()
    return scratch


def _forget_bytecode(path: Path) -> None:
    """Drop the cached bytecode of `path`: a same-size edit within the same second would otherwise reuse it."""
    for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        cached.unlink()


def _outcomes_of(output: str, wanted: str) -> set[str]:
    """The outcomes (PASSED, FAILED, ERROR, ...) pytest's -rA summary reports for node `wanted` (and, for a
    parametrised test named without its parameters, for each of its cases)."""
    found = set()
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS") and (
                rest == wanted or rest.startswith(wanted + " ") or ("[" not in wanted and rest.startswith(wanted + "["))):
            found.add(status)
    return found


def run_tests(scratch: Path, tests: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    env = {**os.environ, "PYTHONPATH": str(scratch / "IWUOSegmentation"), "HOME": str(scratch.parent / "home"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("IWUO_FAULT", None)
    command = [sys.executable, "-m", "pytest", *tests, "-q", "-rA", "-p", "no:cacheprovider", "--no-header",
               "-o", "addopts=", "-W", "ignore::DeprecationWarning"]
    proc = subprocess.Popen(command, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the test's own children too (e.g. nnUNetv2_predict)
        output, _ = proc.communicate()
        return None, output
    return proc.returncode, output


def run_mutation(scratch: Path, mutation, timeout: float) -> Outcome:
    start = time.time()
    path = scratch / mutation.file
    original = path.read_text(encoding="utf-8") if path.is_file() else ""
    changed = mutated_text(original, mutation.old, mutation.new)
    if changed is None:
        return Outcome(mutation.name, "stale", 0.0, list(mutation.tests),
                       summary=f"`old` found {original.count(mutation.old)} times in {mutation.file}, not once")
    try:
        path.write_text(changed, encoding="utf-8")
        _forget_bytecode(path)
        code, output = run_tests(scratch, mutation.tests, timeout)
    finally:
        path.write_text(original, encoding="utf-8")
        _forget_bytecode(path)
    seconds = round(time.time() - start, 1)
    outcomes = {t: _outcomes_of(output, t) for t in mutation.tests}
    failed = [t for t in mutation.tests if outcomes[t] & {"FAILED", "ERROR"}]
    passed = [t for t in mutation.tests if t not in failed and outcomes[t] & {"PASSED", "XPASS"}]
    summary = next((line.strip("= ") for line in reversed(output.splitlines()) if re.search(r"\d+ (passed|failed|error)",
                                                                                             line)), "")
    evidence = " / ".join(line[2:].strip() for line in output.splitlines() if line.startswith("E ") and line[2:].strip())[:600]
    if code is None:
        outcome = "timeout"
    elif passed:
        outcome = "missed"
    elif len(failed) == len(mutation.tests):
        outcome = "caught"
    else:
        outcome = "error"
        evidence = evidence or output.strip()[-300:]
    return Outcome(mutation.name, outcome, seconds, list(mutation.tests), failed, passed, summary, evidence)


def load_average() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def write_results(out: Path, table, results: list[dict], runs: list[dict]) -> None:
    """mutations.json (every result, with its mutation) and mutations.md (the table the README links to)."""
    by_name = {m.name: m for m in table.MUTATIONS}
    results = [{**r, "claim": by_name[r["name"]].claim, "file": by_name[r["name"]].file, "old": by_name[r["name"]].old,
                "new": by_name[r["name"]].new} for r in results]
    caught = sum(r["outcome"] == "caught" for r in results)
    data = {"mutations": len(results), "caught": caught,
            "not_caught": [r["name"] for r in results if r["outcome"] != "caught"],
            "seconds_of_the_mutations": round(sum(r["seconds"] for r in results), 1),
            "command": "python scripts/run_mutations.py",
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}, "runs": runs, "results": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "mutations.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = ["# Named mutations", "",
             f"{len(results)} mutations, {caught} caught; {data['seconds_of_the_mutations']} s for all of them on "
             f"{os.cpu_count()} cores (`python scripts/run_mutations.py`; the table is `Testing/mutation_table.py`).", ""]
    lines += [f"* run of {run['date']}: {run['what']}, {run['seconds']} s, load average {run['load_average_before']} before, "
              f"{run['load_average_after']} after" for run in runs]
    lines += ["", "| mutation | README claim | file | outcome | seconds | test(s) that failed |", "|---|---|---|---|---|---|"]
    for r in results:
        tests = ", ".join(f"`{t.split('::', 1)[-1]}`" for t in (r["failed"] or r["tests"]))
        claim = r["claim"].replace("|", "\\|")
        lines.append(f"| `{r['name']}` | {claim} | `{r['file'].split('IWUOSegmentationLib/')[-1]}` | {r['outcome']} | "
                     f"{r['seconds']} | {tests} |")
    (out / "mutations.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the mutations and whether each is stale; run none")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument("--rerun", nargs="+", metavar="NAME",
                        help="run these mutations again and replace their results in the results file (the run is "
                             "listed beside the earlier ones)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for mutations.json and mutations.md (default {RESULTS} for a full run; "
                             "none with --only)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per mutation (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args(argv)
    table = load_table()
    mutations = list(table.MUTATIONS)
    if args.list:
        for m in mutations:
            state = {1: "ok"}.get(occurrences(ROOT, m), f"STALE ({occurrences(ROOT, m)} matches)")
            print(f"{m.name:45s} {state:18s} {m.file.split('IWUOSegmentationLib/')[-1]:32s} {', '.join(m.tests)}")
        return 0
    chosen = args.only or args.rerun
    if chosen:
        unknown = set(chosen) - {m.name for m in mutations}
        if unknown:
            parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
        mutations = [m for m in mutations if m.name in chosen]
    out = args.out if args.out is not None else (None if args.only else RESULTS)
    run = {"date": time.strftime("%Y-%m-%d %H:%M"), "what": "again: " + ", ".join(chosen) if args.rerun else
           (", ".join(chosen) if chosen else "every mutation"), "load_average_before": load_average()}
    start = time.time()
    scratch = make_scratch(ROOT)
    outcomes = []
    try:
        for i, mutation in enumerate(mutations, 1):
            outcome = run_mutation(scratch, mutation, args.timeout)
            outcomes.append(outcome)
            print(f"[{i}/{len(mutations)}] {outcome.name}: {outcome.outcome.upper()} in {outcome.seconds} s "
                  f"({outcome.summary}) {outcome.evidence[:160]}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch.parent)
    run.update(seconds=round(time.time() - start, 1), load_average_after=load_average())
    caught = sum(o.outcome == "caught" for o in outcomes)
    print(f"{len(outcomes)} mutations, {caught} caught, in {run['seconds']:.0f} s")
    if out is not None:
        results, runs = [o.__dict__ for o in outcomes], [run]
        if args.rerun:  # the earlier results of the others stay, with the run that made them
            earlier = json.loads((out / "mutations.json").read_text(encoding="utf-8"))
            again = {o.name: o.__dict__ for o in outcomes}
            kept = {**{r["name"]: r for r in earlier["results"]}, **again}  # a mutation new to the table is added
            results, runs = [kept[m.name] for m in table.MUTATIONS if m.name in kept], [*earlier["runs"], run]
        write_results(out, table, results, runs)
        print(f"wrote {out / 'mutations.json'} and {out / 'mutations.md'}")
    return 0 if caught == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
