"""What the Slicer module needs from the Slicer that hosts it, decided in plain Python (IWUOSegmentationLib/host)
and handed to Slicer by gui/dependencies.py: the minimum version, the Lib reload order, and the pip install.

gui/dependencies.py runs against the real slicer-core `slicer` package with the application layer it lacks
(`slicer.app`, `slicer.packaging`, the PyTorch extension) stubbed: the Qt/app part that cannot run here.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WINDOWS_CONSTRAINTS = r"C:\Users\Jane Smith\AppData\Local\Temp\iwuo constraints.txt"


# -- minimum Slicer version ---------------------------------------------------------------------------------------

def test_slicer_older_than_5_4_is_refused_with_one_line():
    from IWUOSegmentationLib.errors import IWUOError
    from IWUOSegmentationLib.host.slicer_version import check_slicer_version

    for major, minor in ((5, 4), (5, 6), (5, 10), (5, 12), (6, 0)):
        check_slicer_version(major, minor)
    for major, minor in ((5, 2), (5, 3), (4, 13)):
        with pytest.raises(IWUOError) as refused:
            check_slicer_version(major, minor)
        line = str(refused.value)
        assert "\n" not in line and "5.4 or later" in line and f"{major}.{minor}" in line


def test_the_module_checks_the_version_before_importing_what_slicer_5_2_lacks():
    """slicer.i18n and slicer.parameterNodeWrapper do not exist in Slicer 5.2: the check must come first."""
    import ast

    tree = ast.parse((ROOT / "IWUOSegmentation" / "IWUOSegmentation.py").read_text())
    order = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.Expr))]
    check = next(i for i, line in enumerate(order) if line.startswith("check_slicer_version(slicer.app.majorVersion"))
    first_new = next(i for i, line in enumerate(order) if "slicer.i18n" in line or "parameterNodeWrapper" in line)
    assert check < first_new


# -- Reload: the library, dependencies first ----------------------------------------------------------------------

def _write_package(root: Path, version: str) -> None:
    (root / "iwuo_reload_probe").mkdir(exist_ok=True)
    files = {
        "__init__.py": "",
        "base.py": f"def answer():\n    return {version!r}\n\n\nclass Thing:\n    VERSION = {version!r}\n",
        "middle.py": "from .base import Thing, answer\n\nTHING = Thing()\n",
        "top.py": "from . import middle\nfrom .middle import answer as relayed\n\n\ndef lazy():\n"
                  "    from .base import answer\n    return answer()\n",
    }
    for name, text in files.items():
        (root / "iwuo_reload_probe" / name).write_text(text)
    stamp = time.time() + (2 if version == "new" else 0)  # a new mtime, so that the cached bytecode is not reused
    for name in files:
        os.utime(root / "iwuo_reload_probe" / name, (stamp, stamp))


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    _write_package(tmp_path, "old")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    import iwuo_reload_probe.top  # noqa: F401

    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("iwuo_reload_probe")]:
        del sys.modules[name]


def test_reload_order_puts_what_a_module_bound_before_it(probe_package):
    from IWUOSegmentationLib.host.module_reload import bound_dependencies, reload_order

    loaded = {n: m for n, m in sys.modules.items() if n.startswith("iwuo_reload_probe")}
    graph = bound_dependencies(loaded, "iwuo_reload_probe")
    assert graph["iwuo_reload_probe.middle"] == {"iwuo_reload_probe.base"}
    assert graph["iwuo_reload_probe.top"] == {"iwuo_reload_probe.middle", "iwuo_reload_probe.base"}  # relayed's module
    order = reload_order(graph)
    assert order.index("iwuo_reload_probe.base") < order.index("iwuo_reload_probe.middle") < \
        order.index("iwuo_reload_probe.top")
    assert reload_order({"b": {"a"}, "a": {"b"}, "c": set()}) == ["c", "a", "b"], "a cycle is broken, not dropped"


def test_reload_package_makes_every_module_run_the_new_code(probe_package):
    from IWUOSegmentationLib.host.module_reload import reload_package

    top, middle = sys.modules["iwuo_reload_probe.top"], sys.modules["iwuo_reload_probe.middle"]
    assert top.relayed() == "old" and middle.THING.VERSION == "old"
    _write_package(probe_package, "new")
    importlib.invalidate_caches()
    order = reload_package("iwuo_reload_probe")
    assert set(order) == {"iwuo_reload_probe", "iwuo_reload_probe.base", "iwuo_reload_probe.middle",
                          "iwuo_reload_probe.top"}
    assert top.relayed() == "new" and middle.THING.VERSION == "new" and top.lazy() == "new"
    assert isinstance(middle.THING, sys.modules["iwuo_reload_probe.base"].Thing)


def test_reloading_in_the_wrong_order_would_leave_old_code(probe_package):
    """Why the order matters: reloading the relay before its source keeps the old function."""
    _write_package(probe_package, "new")
    importlib.invalidate_caches()
    for name in ("iwuo_reload_probe.top", "iwuo_reload_probe.middle", "iwuo_reload_probe.base"):
        importlib.reload(sys.modules[name])
    assert sys.modules["iwuo_reload_probe.top"].relayed() == "old"


def test_the_library_reload_order_respects_every_bound_name():
    """On this package: every module the Slicer module loads comes after the modules it took names from."""
    import IWUOSegmentationLib.gui.dependencies  # noqa: F401
    import IWUOSegmentationLib.mrml.review_controller  # noqa: F401
    import IWUOSegmentationLib.review.report  # noqa: F401
    from IWUOSegmentationLib.host.module_reload import bound_dependencies, reload_order

    loaded = {n: m for n, m in sys.modules.items() if n.startswith("IWUOSegmentationLib")}
    graph = bound_dependencies(loaded, "IWUOSegmentationLib")
    order = reload_order(graph)
    assert sorted(order) == sorted(graph)
    position = {name: i for i, name in enumerate(order)}
    late = [(m, d) for m, deps in graph.items() for d in deps if position[d] > position[m]]
    assert not late, late
    assert position["IWUOSegmentationLib.errors"] < position["IWUOSegmentationLib.storage.folder_lock"]
    assert position["IWUOSegmentationLib.review.curve_figure"] < position["IWUOSegmentationLib.review.report"]


# -- pip: what is asked, and what must survive -----------------------------------------------------------------------

def _slicer_pip_arguments(requirements) -> list[str]:
    """How slicer.util.pip_install (Slicer 5.4-5.10, util.py) and packaging._build_pip_args (5.12) read their
    argument: a str is split with shlex in POSIX mode, a list is passed on as it is."""
    if type(requirements) is str:
        return ["install", *shlex.split(requirements)]
    assert type(requirements) is list, "pip_install accepts only str or list (type(...) == list)"
    return ["install", *requirements]


def test_pip_arguments_keep_a_windows_path_with_spaces_and_backslashes():
    from IWUOSegmentationLib.host.python_packages import pip_install_arguments

    args = pip_install_arguments(["nnunetv2>=2.5", "nilearn>=0.10"], WINDOWS_CONSTRAINTS)
    assert _slicer_pip_arguments(args) == ["install", "nnunetv2>=2.5", "nilearn>=0.10", "-c", WINDOWS_CONSTRAINTS]
    old_way = " ".join(["nnunetv2>=2.5", "nilearn>=0.10"]) + f" -c {WINDOWS_CONSTRAINTS}"  # the string passed before
    assert WINDOWS_CONSTRAINTS not in _slicer_pip_arguments(old_way), "the test must show the string form breaking"


def test_constraints_pin_slicers_packages_and_a_replacement_is_seen():
    from IWUOSegmentationLib.host.python_packages import PROTECTED, constraints_text, installed_versions, replaced

    assert set(PROTECTED) == {"numpy", "scipy", "SimpleITK", "torch"}
    versions = installed_versions()
    import numpy
    import scipy

    assert versions["numpy"] == numpy.__version__ and versions["scipy"] == scipy.__version__
    text = constraints_text(versions)
    assert f"numpy=={numpy.__version__}\n" in text and f"scipy=={scipy.__version__}\n" in text
    assert constraints_text({"numpy": "1.26.4", "torch": None}) == "numpy==1.26.4\n"
    assert replaced(versions, dict(versions)) == []
    assert replaced({"numpy": "1.26.4", "SimpleITK": "2.3.1", "torch": None},
                    {"numpy": "2.1.0", "SimpleITK": "2.3.1", "torch": "2.5.0"}) == ["numpy 1.26.4 -> 2.1.0",
                                                                                    "torch none -> 2.5.0"]


def test_requirements_are_pyprojects():
    """One source: the install list of the Slicer module is pyproject.toml's for those packages."""
    import re

    import tomllib

    from IWUOSegmentationLib.host.python_packages import PROTECTED, REQUIREMENTS

    declared = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower(): r
                for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert {m: declared[m.lower()] for m in REQUIREMENTS} == REQUIREMENTS
    assert all(p.lower() in declared for p in PROTECTED), "the protected packages are the project's dependencies too"


# -- gui/dependencies.py on slicer-core with the app layer stubbed ---------------------------------------------------

class _App:
    def __init__(self, testing: bool = False):
        self.testing = testing

    def testingEnabled(self):
        return self.testing


@pytest.fixture
def installer(monkeypatch):
    """gui/dependencies with one requirement that is not installed, torch installed, Slicer < 5.12 (no packaging)."""
    import slicer
    import slicer.util

    from IWUOSegmentationLib.gui import dependencies

    monkeypatch.setattr(slicer, "app", _App(), raising=False)
    monkeypatch.setattr(dependencies, "REQUIREMENTS", {"iwuo_never_installed": "iwuo-never-installed>=1"})
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    calls = []

    def pip_install(requirements):
        calls.append(("pip_install", requirements, Path(requirements[-1]).read_text()))

    monkeypatch.setattr(slicer.util, "pip_install", pip_install)
    return types.SimpleNamespace(module=dependencies, calls=calls, slicer=slicer, monkeypatch=monkeypatch)


def test_before_5_12_pip_install_gets_a_list_with_the_pins_and_the_file_goes(installer):
    import numpy

    ok, why = installer.module._ensure(lambda text: True)
    (name, args, constraints), = installer.calls
    assert type(args) is list and args[:2] == ["iwuo-never-installed>=1", "-c"]
    assert f"numpy=={numpy.__version__}" in constraints and not Path(args[-1]).exists()
    assert not ok and why == "Still missing after the install: iwuo-never-installed>=1; restart Slicer."


def test_each_failure_is_one_line(installer):
    m, monkeypatch = installer.module, installer.monkeypatch
    assert m._ensure(lambda text: False) == (False, m.DECLINED)

    def offline(requirements):
        raise subprocess.CalledProcessError(1, ["pip", "install"])

    monkeypatch.setattr(installer.slicer.util, "pip_install", offline)
    ok, why = m._ensure(lambda text: True)
    assert not ok and "failed (pip exit code 1; offline?" in why and "\n" not in why
    versions = iter([{"numpy": "1.26.4"}, {"numpy": "2.1.0"}])
    monkeypatch.setattr(installer.slicer.util, "pip_install", lambda requirements: None)
    monkeypatch.setattr(m, "installed_versions", lambda: next(versions))
    ok, why = m._ensure(lambda text: True)
    assert not ok and "changed Slicer's own packages (numpy 1.26.4 -> 2.1.0)" in why
    monkeypatch.setattr(installer.slicer, "app", _App(testing=True), raising=False)
    ok, why = m._ensure(lambda text: pytest.fail("nothing is asked in testing mode"))
    assert not ok and "testing mode" in why


def test_5_12_pip_ensure_skips_and_pins_slicers_packages(installer):
    from IWUOSegmentationLib.host.python_packages import PROTECTED

    calls, monkeypatch = [], installer.monkeypatch
    packaging = types.ModuleType("slicer.packaging")

    def pip_ensure(requirements, constraints=None, skip_packages=None, requester=None):
        calls.append((requirements, Path(constraints).read_text(), skip_packages, requester))
        raise RuntimeError("User declined package installation")

    packaging.pip_ensure = pip_ensure
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    monkeypatch.setattr(installer.slicer, "packaging", packaging, raising=False)
    assert installer.module._ensure(lambda text: pytest.fail("pip_ensure asks itself")) == (False,
                                                                                             installer.module.DECLINED)
    (requirements, constraints, skip, requester), = calls
    assert requirements == ["iwuo-never-installed>=1"] and skip == list(PROTECTED) and requester == "IWUOSegmentation"
    assert "numpy==" in constraints and "scipy==" in constraints and not installer.calls


def test_a_failed_torch_install_is_one_line(installer):
    """PyTorchUtils.installTorch(askConfirmation=False) raises when it fails; it never returns None then."""
    real_find_spec = importlib.util.find_spec
    installer.monkeypatch.setattr(importlib.util, "find_spec",
                                  lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    pytorch_utils = types.ModuleType("PyTorchUtils")

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=False):
            raise subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "light_the_torch", "install", "torch"])

    pytorch_utils.PyTorchUtilsLogic = PyTorchUtilsLogic
    installer.monkeypatch.setitem(sys.modules, "PyTorchUtils", pytorch_utils)
    ok, why = installer.module._ensure(lambda text: True)
    assert not ok and why.startswith("PyTorch could not be installed (CalledProcessError:") and "\n" not in why
    assert installer.module._ensure(lambda text: False) == (False, "PyTorch is needed to analyse a case.")
