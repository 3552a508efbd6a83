"""The extension is laid out the way Slicer's build expects, and the layers keep their arrows."""

from __future__ import annotations

import ast
import json
import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "IWUOSegmentation"
LIB = MODULE / "IWUOSegmentationLib"


def _cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"{variable} not set in the module CMakeLists.txt"
    return [item.replace("${MODULE_NAME}", "IWUOSegmentation") for item in match.group(1).split()]


def test_top_level_cmake_follows_the_extension_template():
    text = (ROOT / "CMakeLists.txt").read_text()
    for needle in ("project(IWUOSegmentation)", "EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS",
                   "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                   'set(EXTENSION_DEPENDS "PyTorch")', "find_package(Slicer ",
                   "include(${Slicer_USE_FILE})", "add_subdirectory(IWUOSegmentation)",
                   "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert needle in text, needle
    assert text.index("find_package(Slicer") < text.index("add_subdirectory(IWUOSegmentation)") \
        < text.index("Slicer_EXTENSION_CPACK")


def test_minimum_slicer_version_is_one_number_in_cmake_module_and_readme():
    """The extension build asks for the Slicer the module accepts (host/slicer_version.py), and the README says it."""
    from IWUOSegmentationLib.host.slicer_version import MINIMUM_SLICER_VERSION

    needed = ".".join(map(str, MINIMUM_SLICER_VERSION))
    assert re.search(r"find_package\(Slicer ([\d.]+) REQUIRED\)", (ROOT / "CMakeLists.txt").read_text()).group(1) == needed
    assert f"3D Slicer {needed} or later" in (ROOT / "README.md").read_text()


def test_sample_data_button_reads_what_the_readme_promises():
    """SampleData shows a source's sampleDescription, which is its sampleName when registered through
    registerCustomSampleDataSource (it takes no description: SampleData.py, 5.4-5.12)."""
    from IWUOSegmentationLib.data.self_test_case import sample_data_source

    source = sample_data_source()
    assert "sampleDescription" not in source
    promised = re.findall(r"\*Sample Data → (?:IWUOSegmentation → )?([^*\n]+)\*", (ROOT / "README.md").read_text())
    assert len(promised) >= 2 and set(promised) == {source["sampleName"]}, promised


def test_module_cmake_lists_every_installed_file():
    text = (MODULE / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    listed = set(_cmake_list(text, "MODULE_PYTHON_SCRIPTS")) | set(_cmake_list(text, "MODULE_PYTHON_RESOURCES"))
    on_disk = {p.relative_to(MODULE).as_posix() for p in MODULE.rglob("*")
               if p.is_file() and not any(part == "__pycache__" or part.endswith(".egg-info") for part in p.parts)
               and p.name != "CMakeLists.txt"}
    missing = sorted(on_disk - listed)
    assert not missing, f"files not listed in IWUOSegmentation/CMakeLists.txt (would not be installed): {missing}"
    stale = sorted(listed - on_disk)
    assert not stale, f"listed in CMake but absent: {stale}"
    scripts = _cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    assert all(s.endswith(".py") for s in scripts)


def test_catalog_entry_matches_the_extension():
    entry = json.loads((ROOT / "Resources" / "IWUOSegmentation.json").read_text())
    # Keys of Slicer's catalog-entry schema v1.0.2 (Schemas/ in Slicer's repository).
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
    assert {"$schema", "category", "scm_url"} <= set(entry) <= allowed
    assert "slicer-extension-catalog-entry-schema" in entry["$schema"]
    cmake = (ROOT / "CMakeLists.txt").read_text()
    depends = re.search(r'set\(EXTENSION_DEPENDS "([^"]*)"\)', cmake).group(1).split()
    assert entry["build_dependencies"] == depends
    assert entry["category"] == re.search(r'set\(EXTENSION_CATEGORY "([^"]*)"\)', cmake).group(1)
    assert 1 <= entry["tier"] <= 5 and entry["scm_url"].endswith(".git") and entry["scm_revision"]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_icons_are_128_pixel_pngs_with_content():
    for icon in (ROOT / "IWUOSegmentation.png", MODULE / "Resources" / "Icons" / "IWUOSegmentation.png"):
        assert _png_size(icon) == (128, 128)
        assert icon.stat().st_size > 5000, "a real icon, not a flat placeholder"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_layers_point_one_way():
    """core -> mrml -> front ends (gui: the Slicer module's Qt side; web: the trame-slicer browser app)."""
    front_end = {"qt", "ctk", "trame", "trame_slicer", "trame_server", "trame_client"}
    gui_only = {"slicer", "vtk"} | front_end
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(LIB).parts
        used = _imports(path)
        if rel[0] == "mrml":
            assert not used & front_end, f"{path} (MRML layer) imports {used & front_end}"
        elif rel[0] == "web":
            assert not used & {"qt", "ctk"}, f"{path} (browser front end) imports {used & {'qt', 'ctk'}}"
        elif rel[0] != "gui":
            assert not used & gui_only, f"{path} (pure core) imports {used & gui_only}"


def test_package_and_console_script_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'iwuo = "IWUOSegmentationLib.cli:main"' in text
    for dep in ("torch", "nnunetv2", "numpy", "SimpleITK", "scipy", "matplotlib"):
        assert f'"{dep}' in text, dep
    for dep in ("pytest", "slicer-core", "slicerio", "ruff"):
        assert f'"{dep}' in text, dep
