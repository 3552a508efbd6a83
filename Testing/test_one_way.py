"""One call site per concept: the networks are built for an analysis only in nnunet/analysis.py (`CaseAnalyzer`),
and a file is written to a temporary name and renamed over its target only in storage/atomic_files.py.

A source scan (the syntax tree, so comments and prose do not count) over the library, the scripts and the
benchmarks. Tests may build a `MemberPredictor` themselves (test_inference.py tests it), so Testing/ is not
scanned. Each rule is shown to catch a planted copy.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = (ROOT / "IWUOSegmentation", ROOT / "scripts", ROOT / "benchmarks")
LIB = ROOT / "IWUOSegmentation" / "IWUOSegmentationLib"
#: The one module allowed each thing.
PREDICTOR_HOME = LIB / "nnunet" / "analysis.py"
RENAME_HOME = LIB / "storage" / "atomic_files.py"
#: Calls that move a file or folder over another name.
_RENAMERS = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}


def _call_name(call: ast.Call) -> tuple[str, str]:
    """(object, name) of a call: ("os", "replace") for os.replace(...), ("", "MemberPredictor") for a bare name."""
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return owner, func.attr
    return "", func.id if isinstance(func, ast.Name) else ""


def _is_rename(call: ast.Call, imported: dict[str, tuple[str, str]]) -> bool:
    owner, name = _call_name(call)
    if (owner, name) in _RENAMERS or (not owner and imported.get(name) in _RENAMERS):
        return True
    if owner in ("os", "shutil"):
        return False
    # Path.rename(target) / Path.replace(target): one argument (str.replace always takes two)
    return name == "rename" or (name == "replace" and len(call.args) == 1 and not call.keywords)


def violations(roots=SCANNED, predictor_home: Path = PREDICTOR_HOME, rename_home: Path = RENAME_HOME) -> list[str]:
    """`file:line: what` for each MemberPredictor built, or file renamed, outside its one module."""
    found = []
    for root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            imported = {alias.asname or alias.name: (node.module, alias.name) for node in ast.walk(tree)
                        if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil") for alias in node.names}
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                where = f"{path.relative_to(root.parent) if root.parent in path.parents else path}:{node.lineno}"
                if _call_name(node)[1] == "MemberPredictor" and path != predictor_home:
                    found.append(f"{where}: MemberPredictor( outside {predictor_home.name}; use CaseAnalyzer")
                if _is_rename(node, imported) and path != rename_home:
                    found.append(f"{where}: {ast.unparse(node.func)}( outside {rename_home.name}; use its writers")
    return found


def test_one_analysis_entry_point_and_one_atomic_writer():
    assert violations() == []


def test_the_scan_catches_a_planted_copy(tmp_path):
    """Copies of what the rules forbid, in a tree laid out like the project: each is found, in the home modules not."""
    lib = tmp_path / "IWUOSegmentation" / "IWUOSegmentationLib"
    (lib / "nnunet").mkdir(parents=True)
    (lib / "storage").mkdir()
    (tmp_path / "scripts").mkdir()
    home_predictor, home_rename = lib / "nnunet" / "analysis.py", lib / "storage" / "atomic_files.py"
    home_predictor.write_text("def f(model, settings):\n    return MemberPredictor(model, settings)\n")
    home_rename.write_text("import os\n\ndef w(tmp, path):\n    os.replace(tmp, path)\n")
    (lib / "cli.py").write_text(  # what the issue found: the analysis assembled by hand, a write renamed by hand
        "import os\nfrom os import rename as mv\nfrom pathlib import Path\n\n"
        "def run(model):\n    predictor = inference.MemberPredictor(model, device='cpu')\n"
        "    tmp = Path('out.tmp')\n    sitk.WriteImage(image, str(tmp))\n    os.replace(tmp, 'out.nii.gz')\n"
        "    tmp.rename('out2.nii.gz')\n    tmp.replace('out3.nii.gz')\n    mv(tmp, 'out4')\n"
        "    return 'a.b'.replace('.', '/')  # a string's replace is no rename\n")
    (tmp_path / "scripts" / "make.py").write_text("import shutil\n\nshutil.move('a.partial', 'a')\n")
    found = violations([tmp_path / "IWUOSegmentation", tmp_path / "scripts"], home_predictor, home_rename)
    assert [f.split(": ", 1)[0] for f in found] == [
        "IWUOSegmentation/IWUOSegmentationLib/cli.py:6", "IWUOSegmentation/IWUOSegmentationLib/cli.py:9",
        "IWUOSegmentation/IWUOSegmentationLib/cli.py:10", "IWUOSegmentation/IWUOSegmentationLib/cli.py:11",
        "IWUOSegmentation/IWUOSegmentationLib/cli.py:12", "scripts/make.py:3"], found
    assert "MemberPredictor( outside analysis.py" in found[0] and "os.replace( outside atomic_files.py" in found[1]
