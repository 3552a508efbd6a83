"""The mutation table (Testing/mutation_table.py) is current, and every mutation in it is caught (slow).

The fast checks run in seconds in CI: each mutation's `old` snippet is found exactly once in its file, the
mutated file still parses, each named test exists, each claim is the README's own words, and the runner refuses
a stale snippet. The slow test runs scripts/run_mutations.py on a scratch copy: every mutation must be caught.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from script_module import load_script

ROOT = Path(__file__).resolve().parent.parent
RUNNER = load_script("run_mutations")
TABLE = RUNNER.load_table()


def _words(text: str) -> str:
    return " ".join(text.split())


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test_")}


@pytest.mark.parametrize("mutation", TABLE.MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_applies_once_and_names_a_test_and_a_readme_claim(mutation):
    path = ROOT / mutation.file
    assert path.is_file(), f"{mutation.file} does not exist"
    text = path.read_text(encoding="utf-8")
    assert text.count(mutation.old) == 1, f"stale: `old` occurs {text.count(mutation.old)} times in {mutation.file}"
    assert mutation.new != mutation.old
    if path.suffix == ".py":
        ast.parse(RUNNER.mutated_text(text, mutation.old, mutation.new))  # a break of behaviour, not of syntax
    assert mutation.tests
    for node in mutation.tests:
        file, _, name = node.partition("::")
        assert (ROOT / file).is_file(), f"{node}: no such test file"
        assert re.sub(r"\[.*\]$", "", name) in _test_functions(ROOT / file), f"{node}: no such test"
    assert _words(mutation.claim) in _words((ROOT / "README.md").read_text(encoding="utf-8")), \
        f"{mutation.name}: the claim is not the README's words: {mutation.claim!r}"


def test_names_are_unique_and_each_break_is_distinct():
    names = [m.name for m in TABLE.MUTATIONS]
    assert len(names) == len(set(names))
    edits = [(m.file, m.old, m.new) for m in TABLE.MUTATIONS]
    assert len(edits) == len(set(edits))


def test_the_runner_refuses_a_snippet_that_is_not_there_exactly_once():
    assert RUNNER.mutated_text("a = 1\nb = 2\n", "b = 2", "b = 3") == "a = 1\nb = 3\n"
    assert RUNNER.mutated_text("a = 1\n", "b = 2", "b = 3") is None  # gone: stale
    assert RUNNER.mutated_text("b = 2\nb = 2\n", "b = 2", "b = 3") is None  # ambiguous: stale


def test_the_results_file_is_a_run_of_this_table():
    """benchmarks/results/mutations.json (what the README counts) holds one result per mutation of the table,
    made with the same snippets: a changed table needs a new run of scripts/run_mutations.py."""
    results = json.loads((ROOT / "benchmarks" / "results" / "mutations.json").read_text(encoding="utf-8"))
    recorded = {r["name"]: (r["file"], r["old"], r["new"]) for r in results["results"]}
    assert recorded == {m.name: (m.file, m.old, m.new) for m in TABLE.MUTATIONS}
    assert results["mutations"] == len(results["results"])
    assert results["caught"] == sum(r["outcome"] == "caught" for r in results["results"])


@pytest.mark.slow
def test_every_mutation_is_caught(tmp_path):
    """The whole table on a scratch copy (about an hour on 2 shared cores): no mutation missed or stale."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_mutations.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    results = json.loads((tmp_path / "mutations.json").read_text(encoding="utf-8"))
    not_caught = [(r["name"], r["outcome"], r["evidence"]) for r in results["results"] if r["outcome"] != "caught"]
    assert not not_caught and proc.returncode == 0, proc.stdout[-3000:]
