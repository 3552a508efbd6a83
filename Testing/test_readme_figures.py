"""The README's figures are its result files' (scripts/readme_figures.py): none is typed by hand where a file has it."""

from __future__ import annotations

from pathlib import Path

from script_module import load_script

ROOT = Path(__file__).resolve().parent.parent
FIGURES = load_script("readme_figures")


def test_the_readme_quotes_every_result_file_as_the_script_writes_it():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    names = FIGURES.block_names(text)
    assert sorted(names) == sorted(FIGURES.BLOCKS), "each result file has exactly one generated block in README.md"
    assert FIGURES.render(text, FIGURES.results(names)) == text, \
        "README.md's figures differ from benchmarks/results/*.json: run python scripts/readme_figures.py"


def test_a_changed_result_file_changes_the_readme():
    """The check can fail: another number in a result file gives another README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    data = FIGURES.results(FIGURES.block_names(text))
    data["fault_injection"] = {**data["fault_injection"], "survived": data["fault_injection"]["survived"] - 1}
    data["inference"] = {**data["inference"], "time_ratio_median": 1.234}
    changed = FIGURES.render(text, data)
    assert changed != text
    assert f"| survived (every check above held after the restart) | {data['fault_injection']['survived']} |" in changed
    assert "**time ratio 1.234**" in changed


def test_the_evaluation_verdict_follows_the_confirmation_tests():
    """The protocol's rule is applied to the reports' CSV tables: a default no longer significantly better than
    random (Holm p >= 0.05) reads as not confirmed."""
    data = FIGURES.evaluation_results()
    assert "confirmed.**" in FIGURES.evaluation(data)
    tests = data["confirmation/phantoms"]["tests"]
    weakened = [{**t, "p_holm": "0.2"} if t["comparison"].endswith(" vs random") else t for t in tests]
    data["confirmation/phantoms"] = {**data["confirmation/phantoms"], "tests": weakened}
    assert "not confirmed.**" in FIGURES.evaluation(data)
