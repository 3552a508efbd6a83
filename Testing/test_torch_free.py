"""Everything that only reads files runs with only what stock Slicer ships: slicer(-core), numpy, scipy, SimpleITK.

Stock Slicer has no torch, nnU-Net, matplotlib, nilearn or trame, and nothing may be installed in its
testing mode. A child Python gets an import hook that refuses every top-level module that is neither
in the standard library nor in that short list, then runs the module's self-test body on the
shipped phantom analysis, the `iwuo review` preparation of an existing analysis, and the desktop's
resume of a saved scene — the paths the module takes in `setUp`/`runTest`, `loadAnalysis` and `enter()`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What a stock Slicer (5.6 and later) brings beyond the standard library, and this package. slicer-layer-dm
#: (the web extra) installs slicer/slicer_layer_dm.py into this venv's `slicer` package, whose __init__ imports
#: every module there: it comes with `import slicer` here (compiled MRML classes, no Python dependencies).
ALLOWED = {"numpy", "scipy", "SimpleITK", "slicer", "slicer_core", "slicer_layer_dm", "vtk", "vtkmodules",
           "IWUOSegmentationLib", "synthetic_review"}  # the last: these tests' helper, which needs nothing more
#: Named in the failure message when one of them is reached.
HEAVY = ("torch", "nnunetv2", "matplotlib", "nilearn", "trame", "trame_slicer", "nibabel", "medpy")

BLOCKER = r"""
import importlib.abc, sys
ALLOWED = set(json.loads(sys.argv[1]))
STDLIB = set(sys.stdlib_module_names)

class StockSlicerOnly(importlib.abc.MetaPathFinder):
    refused = []
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ALLOWED or top in STDLIB or top.startswith("_"):
            return None
        StockSlicerOnly.refused.append(name)
        raise ImportError(f"{name} is not in stock Slicer (blocked by the test)")

sys.meta_path.insert(0, StockSlicerOnly())
sys.path.insert(0, sys.argv[2])
"""

BODY = r"""
import shutil, tempfile
from pathlib import Path

for heavy in HEAVY:
    try:
        __import__(heavy)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the blocker let {heavy} through")
StockSlicerOnly.refused.clear()

from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene
from IWUOSegmentationLib.mrml.self_test import run_self_test

work = Path(tempfile.mkdtemp(prefix="iwuo_torch_free_"))
result = run_self_test(create_headless_scene(), str(work / "self_test"))

# `iwuo review --case <shipped case> --analysis <shipped analysis>`: checked and prepared without torch
from IWUOSegmentationLib.review.preparation import prepare_review_case
from IWUOSegmentationLib.data.self_test_case import CASE_FOLDER, analysis_folder

case = prepare_review_case([str(CASE_FOLDER)], None, str(work / "review"), str(analysis_folder()))

# the desktop's resume of a saved scene (enter() -> Logic.resumeReview -> resume_review_from_scene)
from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image, load_analysis_into_scene, open_review
sys.path.insert(0, "Testing")  # the working folder is the repository
from synthetic_review import reopen_saved_review

shutil.copytree(analysis_folder(), case.folder.analysis)
scene = create_headless_scene()
volume = add_volume_from_image(case.images[0], "FLAIR")
loaded = load_analysis_into_scene(scene, case.folder.analysis, volume, case.written_labels,
                                  expected_identity=case.identity)
session = open_review(scene, loaded, volume, case.folder.log)
first = session.next()
session.mark_corrected()
resumed, reopened, _ = reopen_saved_review(scene, session, work / "scene" / "review.mrml")
assert resumed.ranking[resumed.current_rank] == first, (resumed.current_rank, first)
resumed.close()

print("RESULT " + json.dumps({"self_test": result, "refused": sorted(set(StockSlicerOnly.refused)),
                              "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _run_stock_slicer_child(body: str) -> subprocess.CompletedProcess:
    script = "import json\n" + BLOCKER + f"HEAVY = {HEAVY!r}\n" + body
    return subprocess.run([sys.executable, "-c", script, json.dumps(sorted(ALLOWED)), str(ROOT / "IWUOSegmentation")],
                          capture_output=True, text=True, timeout=600, cwd=str(ROOT))


def test_self_test_review_and_resume_need_only_what_stock_slicer_ships():
    run = _run_stock_slicer_child(BODY)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    loaded = set(result["loaded"])
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    third_party = {m for m in loaded if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert third_party <= ALLOWED | {"cython_runtime", "swig_runtime_data5"}, third_party
    facts = result["self_test"]
    assert facts["perfect_dice"][-1] > facts["perfect_dice"][0] and facts["slices_logged"] >= 1
    assert facts["heatmaps"] == sorted(["entropy", "variance", "mutual_information", "disagreement", "impact"])


def test_the_blocker_fails_a_body_that_needs_torch():
    """The check can fail: code that reaches torch (as the inference does) dies in the child."""
    run = _run_stock_slicer_child("from IWUOSegmentationLib.nnunet.inference import MemberPredictor\n")
    assert run.returncode != 0 and "torch is not in stock Slicer" in run.stderr, run.stderr[-2000:]


def test_shipped_colour_tables_are_matplotlibs():
    """colormaps.py replaces matplotlib in the review; its values are matplotlib's to 8 bits."""
    import pytest

    matplotlib = pytest.importorskip("matplotlib")
    from IWUOSegmentationLib.mrml.colormaps import COLORMAPS, PALETTE

    for name, table in COLORMAPS.items():
        expected = [matplotlib.colormaps[name](i / 255.0)[:3] for i in range(256)]
        assert len(table) == 256 and max(abs(a - b) for t, e in zip(table, expected) for a, b in zip(t, e)) <= 0.5 / 255
    expected = [matplotlib.colormaps["tab10"](i)[:3] for i in range(10)]
    assert max(abs(a - b) for t, e in zip(PALETTE, expected) for a, b in zip(t, e)) <= 0.5 / 255
