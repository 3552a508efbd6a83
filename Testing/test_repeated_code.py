"""One copy of each rule: no block of six or more lines stands twice (same lines, or same shape with other
names) in the package, the tests, the benchmarks or the scripts. The check is scripts/repeated_blocks.py."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _checker():
    spec = importlib.util.spec_from_file_location("repeated_blocks", ROOT / "scripts" / "repeated_blocks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_block_of_six_lines_is_repeated():
    checker = _checker()
    blocks = checker.repeated_blocks(checker.python_files(ROOT / name for name in checker.DEFAULT_FOLDERS))
    assert not blocks, ("blocks of six or more lines stand twice; factor each into one function in the module "
                        "that owns it:\n" + "\n".join(blocks))


def test_the_check_finds_a_renamed_copy_and_passes_over_argparse_and_declarations(tmp_path):
    """The check can fail: a copy with other names, in another file or inside a script string, is found;
    argparse runs and exception declarations are not."""
    checker = _checker()
    rule = """
        def first(values, limit):
            kept = [v for v in values if v < limit]
            total = sum(kept)
            if not kept:
                raise ValueError("nothing below the limit")
            mean = total / len(kept)
            return mean, max(kept)
        """
    copy = rule.replace("first", "second").replace("values", "items").replace("kept", "chosen").replace("limit", "cap")
    parser = "".join(f'    p.add_argument("--option{i}", default={i}, help="option {i}")\n' for i in range(8))
    errors = "".join(f"class Error{i}(Base):\n    '''Error {i}.'''\n\n    exit_code = {i}\n\n\n" for i in range(6))
    (tmp_path / "a.py").write_text(textwrap.dedent(rule) + "def parse(p):\n" + parser + "\n\n" + errors)
    (tmp_path / "b.py").write_text("def parse_again(p):\n" + parser + "\n" + textwrap.dedent(copy))
    (tmp_path / "c.py").write_text(f"SCRIPT = '''{textwrap.dedent(copy)}'''\n")
    blocks = checker.repeated_blocks(sorted(tmp_path.glob("*.py")), root=tmp_path)
    assert sorted(blocks) == ["a.py:2-8 ~ b.py:12-18", "a.py:2-8 ~ c.py:2-8", "b.py:12-18 ~ c.py:2-8"], blocks
