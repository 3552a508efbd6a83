"""Everything that only reads files runs with only what stock Slicer ships: slicer(-core), numpy, scipy, SimpleITK.

Stock Slicer has no torch, nnU-Net, matplotlib, nilearn, scikit-learn or trame, and nothing may be installed
in its testing mode. A child Python gets an import hook that refuses every top-level module that is neither
in the standard library nor in that short list, then runs the module's self-test body on the
shipped phantom analysis, the `iwuo review` preparation of an existing analysis, the desktop's
resume of a saved scene and the export of its report — the paths the module takes in `setUp`/`runTest`,
`loadAnalysis`, `enter()` and *Export report*. A second child imports the module file and every gui/ module
the way Slicer loads them, with stubs for the Qt/app layer that cannot run here (qt, ctk and the parts of
`slicer` that only the application has), so an import of torch or nnU-Net at the top of them fails here.
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
HEAVY = ("torch", "nnunetv2", "matplotlib", "nilearn", "sklearn", "trame", "trame_slicer", "nibabel", "medpy")

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
from IWUOSegmentationLib.review.preparation import ReviewRequest, prepare_review_case
from IWUOSegmentationLib.data.self_test_case import CASE_FOLDER, analysis_folder

case = prepare_review_case(ReviewRequest([str(CASE_FOLDER)], None, str(work / "review"), str(analysis_folder())))

# the desktop's resume of a saved scene (enter() -> Logic.resumeReview -> resume_review_from_scene)
from IWUOSegmentationLib.mrml.review_workflow import add_volume_from_image, load_analysis_into_scene, open_review
sys.path.insert(0, "Testing")  # the working folder is the repository
from synthetic_review import correct_slice, reopen_saved_review

shutil.copytree(analysis_folder(), case.folder.analysis)
scene = create_headless_scene()
volume = add_volume_from_image(case.images[0], "FLAIR")
loaded = load_analysis_into_scene(scene, case.folder.analysis, volume, case.written_labels,
                                  expected_identity=case.identity)
session = open_review(scene, loaded, volume, case.folder.log)
first = session.next()
correct_slice(session, first)  # a stroke, so that the report below has a corrected slice to draw
session.mark_corrected()
resumed, reopened, _ = reopen_saved_review(scene, session, work / "scene" / "review.mrml")
assert resumed.ranking[resumed.current_rank] == first, (resumed.current_rank, first)
resumed.close()

# *Export report* on that review (mrml.review_controller.export_report -> review.report.write_review_report)
from IWUOSegmentationLib.review.report import write_review_report

report = write_review_report(resumed.log.path)

print("RESULT " + json.dumps({"self_test": result, "refused": sorted(set(StockSlicerOnly.refused)),
                              "loaded": sorted({m.split(".")[0] for m in sys.modules}), "report": str(report)}))
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
    assert "matplotlib" in HEAVY and "matplotlib" not in ALLOWED  # the report below was written without it
    report = Path(result["report"])
    assert "| slices corrected | 1 |" in report.read_text() and (report.parent / "review_log.csv").is_file()
    from curve_svg_reader import assert_figure_follows_the_log

    from IWUOSegmentationLib.review.budget_log import BudgetLog

    events = BudgetLog(report.parent / "review.budget.jsonl").read()
    assert len({e["slice"] for e in events if e["kind"] == "slice_corrected"}) == 1
    assert_figure_follows_the_log((report.parent / "review_curve.svg").read_text(), events)


#: The Qt/app layer of Slicer, stubbed: only what the module file and gui/ touch when they are imported (classes to
#: subclass, decorators, tr). These are stubs for the part that cannot run here, not a model of Slicer.
QT_LAYER_STUBS = r"""
import types
import slicer


def _stub(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    if "." in name:
        setattr(sys.modules[name.rsplit(".", 1)[0]], name.rsplit(".", 1)[1], module)
    return module


class _Base:
    def __init__(self, *args, **kwargs):
        pass


major, minor = map(int, sys.argv[3].split("."))
slicer.app = types.SimpleNamespace(majorVersion=major, minorVersion=minor)
_stub("qt")
_stub("ctk")
_stub("slicer.ScriptedLoadableModule", **{n: type(n, (_Base,), {}) for n in (
    "ScriptedLoadableModule", "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleWidget",
    "ScriptedLoadableModuleTest")})
if (major, minor) >= (5, 4):  # Slicer 5.2 has neither
    _stub("slicer.i18n", tr=lambda text: text, translate=lambda context, text: text)
    _stub("slicer.parameterNodeWrapper", parameterNodeWrapper=lambda cls: cls, parameterNodeGuiConnector=lambda cls: cls,
          Choice=_Base, Default=_Base, WithinRange=_Base, unannotatedType=lambda t: t)
    _stub("slicer.parameterNodeWrapper.guiConnectors", ctkPathLineEditToPathConnector=type("Connector", (_Base,), {}))
"""

IMPORT_MODULE = r"""
import importlib, pkgutil

import IWUOSegmentation
import IWUOSegmentationLib.gui as gui

names = sorted(m.name for m in pkgutil.iter_modules(gui.__path__))
for name in names:
    importlib.import_module(f"IWUOSegmentationLib.gui.{name}")
print("RESULT " + json.dumps({"gui": names, "refused": sorted(set(StockSlicerOnly.refused)),
                              "widget": hasattr(IWUOSegmentation, "IWUOSegmentationWidget"),
                              "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _import_module_in_stock_slicer(module_dir: Path, slicer_version: str = "5.12") -> subprocess.CompletedProcess:
    script = "import json, sys\n" + BLOCKER + QT_LAYER_STUBS + IMPORT_MODULE
    allowed = sorted(ALLOWED | {"IWUOSegmentation"})  # the module file itself
    return subprocess.run([sys.executable, "-c", script, json.dumps(allowed), str(module_dir), slicer_version],
                          capture_output=True, text=True, timeout=300, cwd=str(ROOT))


def test_module_file_and_every_gui_module_import_with_only_stock_slicer():
    run = _import_module_in_stock_slicer(ROOT / "IWUOSegmentation")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert result["widget"] and not {name.split(".")[0] for name in result["refused"]} & set(HEAVY), result["refused"]
    assert {"analysis_inputs", "dependencies", "qt_analysis", "shortcuts", "sample_data", "module_test",
            "path_parameter", "segment_editor", "channel_selectors"} <= set(result["gui"])
    loaded = set(result["loaded"])
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    third_party = {m for m in loaded if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert third_party <= ALLOWED | {"IWUOSegmentation", "qt", "ctk", "cython_runtime", "swig_runtime_data5"}, third_party


def test_an_import_of_nnunet_at_the_top_of_a_gui_module_fails_the_check(tmp_path):
    """The check can fail: the regression it is for (an import at the top of gui/dependencies.py) is refused."""
    import shutil

    copy = tmp_path / "IWUOSegmentation"
    shutil.copytree(ROOT / "IWUOSegmentation", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pth", "*.nii.gz"))
    dependencies = copy / "IWUOSegmentationLib" / "gui" / "dependencies.py"
    text = dependencies.read_text()
    dependencies.write_text(text.replace("from __future__ import annotations\n",
                                         "from __future__ import annotations\n\nimport nnunetv2  # noqa: F401\n", 1))
    run = _import_module_in_stock_slicer(copy)
    assert run.returncode != 0 and "nnunetv2 is not in stock Slicer" in run.stderr, run.stderr[-2000:]


def test_slicer_5_2_is_refused_with_one_line_before_anything_it_lacks():
    """Slicer 5.2 has no slicer.i18n and no parameterNodeWrapper: the module says which Slicer it needs instead."""
    run = _import_module_in_stock_slicer(ROOT / "IWUOSegmentation", "5.2")
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("IWUOSegmentationLib.host.slicer_version.UnsupportedSlicerError: IWUOSegmentation needs "
                           "3D Slicer 5.4 or later; this is Slicer 5.2."), last


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
