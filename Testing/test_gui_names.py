"""The GUI file reads only widgets that exist in its .ui file (the Qt GUI itself cannot run here)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent / "IWUOSegmentation"


def _ui_names() -> set[str]:
    root = ET.parse(MODULE / "Resources" / "UI" / "IWUOSegmentation.ui").getroot()
    return {el.get("name") for el in root.iter() if el.tag in ("widget", "layout") and el.get("name")}


def _names_read_from_ui() -> set[str]:
    tree = ast.parse((MODULE / "IWUOSegmentation.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            names.add(node.attr)
    return names


def test_every_widget_the_code_reads_exists_in_the_ui_file():
    used = _names_read_from_ui()
    assert len(used) >= 10, "the widget code reads its widgets through self.ui"
    missing = sorted(used - _ui_names())
    assert not missing, f"IWUOSegmentation.py reads widgets that the .ui file does not define: {missing}"


def test_ui_file_is_valid_designer_xml_with_custom_widget_declarations():
    root = ET.parse(MODULE / "Resources" / "UI" / "IWUOSegmentation.ui").getroot()
    used_classes = {el.get("class") for el in root.iter("widget")}
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    custom = {c for c in used_classes if c and c.startswith(("ctk", "qMRML", "qSlicer"))}
    assert custom <= declared, f"custom widget classes used but not declared: {sorted(custom - declared)}"


def _dotted_names(path: Path) -> set[str]:
    """slicer.*, qt.*, ctk.*, SampleData.* attribute chains and `from slicer... import` names used in a file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in ("slicer", "qt", "ctk"):
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        if isinstance(node, ast.Attribute):
            parts = []
            current = node
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name) and current.id in ("slicer", "qt", "ctk", "SampleData"):
                names.add(".".join([current.id, *reversed(parts)]))
    return names


def _in_slicer_core(name: str) -> bool | None:
    """Whether slicer-core has `name` (None: slicer-core does not carry that part of Slicer, e.g. the app or qt)."""
    import slicer
    import slicer.util

    parts = name.split(".")
    if parts[:2] == ["slicer", "util"] and len(parts) > 2:
        owner, rest = slicer.util, parts[2:]
    elif parts[:2] == ["slicer", "mrmlScene"] and len(parts) > 2:
        owner, rest = slicer.vtkMRMLScene, parts[2:]
    elif len(parts) >= 2 and parts[0] == "slicer" and parts[1].startswith("vtk"):
        owner, rest = slicer, parts[1:]
    else:
        return None
    for attr in rest:
        if not hasattr(owner, attr):
            return False
        owner = getattr(owner, attr)
    return True


def test_every_slicer_and_qt_name_the_gui_uses_was_checked_against_slicer_source():
    """Names slicer-core has are looked up there; the rest (qt, the app, scripted-module classes) must be in
    Testing/data/slicer_api_names.json, each with the Slicer/PythonQt source that shows it."""
    import json

    recorded = set(json.loads((Path(__file__).parent / "data" / "slicer_api_names.json").read_text())["names"])
    used = _dotted_names(MODULE / "IWUOSegmentation.py")
    for path in (MODULE / "IWUOSegmentationLib" / "gui").glob("*.py"):
        used |= _dotted_names(path)
    assert {"slicer.util.loadUI", "slicer.util.tryWithErrorDisplay", "qt.QProcess.FailedToStart"} <= used
    in_core = {name: _in_slicer_core(name) for name in used}
    missing_in_core = sorted(name for name, found in in_core.items() if found is False)
    assert not missing_in_core, f"names the GUI uses that slicer-core's Slicer does not have: {missing_in_core}"
    unchecked = sorted(name for name, found in in_core.items() if found is None and name not in recorded)
    assert not unchecked, f"names used by the GUI but not checked against Slicer's source: {unchecked}"
    stale = sorted(name for name in recorded if _in_slicer_core(name) is not None)
    assert not stale, f"names slicer-core can check listed by hand: {stale}"


def _wrapper_fields() -> dict[str, str]:
    """Field name -> annotation source of the module's @parameterNodeWrapper class."""
    tree = ast.parse((MODULE / "IWUOSegmentation.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", "") == "parameterNodeWrapper"
                                                  for d in node.decorator_list):
            return {n.target.id: ast.unparse(n.annotation) for n in node.body if isinstance(n, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in IWUOSegmentation.py")


def _str_path_connector() -> bool:
    """gui/path_parameter.py registers (@parameterNodeGuiConnector) a connector for str and ctkPathLineEdit, and the
    module file imports it, so that it is registered before connectGui."""
    tree = ast.parse((MODULE / "IWUOSegmentationLib" / "gui" / "path_parameter.py").read_text())
    registered = any(isinstance(n, ast.ClassDef) and any(getattr(d, "id", "") == "parameterNodeGuiConnector"
                                                         for d in n.decorator_list)
                     and "ctk.ctkPathLineEdit" in ast.unparse(n) and "== str" in ast.unparse(n) for n in tree.body)
    imported = any(isinstance(n, ast.ImportFrom) and n.module == "IWUOSegmentationLib.gui"
                   and "path_parameter" in {a.name for a in n.names}
                   for n in ast.parse((MODULE / "IWUOSegmentation.py").read_text()).body)
    return registered and imported


def test_parameter_node_fields_bind_to_widgets_slicer_can_connect():
    """Every SlicerParameterName in the .ui names a wrapper field, and each pair is one that a connector in
    Slicer's parameterNodeWrapper/guiConnectors.py accepts (checked there; a wrong pair fails at connectGui)."""
    root = ET.parse(MODULE / "Resources" / "UI" / "IWUOSegmentation.ui").getroot()
    bound = {}
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget.get("class")
    fields = _wrapper_fields()
    assert set(bound) == set(fields), (sorted(bound), sorted(fields))

    def accepted(annotation: str, widget_class: str) -> bool:
        if annotation == "pathlib.Path":
            return widget_class in ("ctkPathLineEdit", "ctkDirectoryButton")
        if annotation.startswith("Annotated[str, Choice("):
            return widget_class == "QComboBox"
        if annotation.startswith("Annotated[float, WithinRange("):
            return widget_class in ("ctkSliderWidget", "QDoubleSpinBox")
        if annotation == "str" or annotation.startswith("Annotated[str, Default("):
            return widget_class == "QLineEdit" or (widget_class == "ctkPathLineEdit" and _str_path_connector())
        if annotation.startswith("vtkMRML"):
            return widget_class == "qMRMLNodeComboBox"
        return False

    wrong = {name: (fields[name], cls) for name, cls in bound.items() if not accepted(fields[name], cls)}
    assert not wrong, f"no Slicer GUI connector binds these (field type, widget): {wrong}"


def test_overlay_choices_are_the_maps_the_mrml_layer_makes():
    """The parameter node's overlay choices are OVERLAY_KINDS itself, imported from the MRML layer (no copy)."""
    tree = ast.parse((MODULE / "IWUOSegmentation.py").read_text())
    imported = {alias.name for n in tree.body if isinstance(n, ast.ImportFrom)
                and n.module == "IWUOSegmentationLib.mrml.review_workflow" for alias in n.names}
    assert "OVERLAY_KINDS" in imported
    assert _wrapper_fields()["overlay"] == "Annotated[str, Choice(list(OVERLAY_KINDS)), Default(OVERLAY_KINDS[0])]"
    assert not [n for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, (ast.List, ast.Tuple))
                and {"entropy", "impact"} <= {getattr(e, "value", None) for e in n.value.elts}], "a copied overlay list"


def test_module_file_is_thin():
    """The module file holds widgets and one-line calls; decisions live in the tested layers below it."""
    lines = (MODULE / "IWUOSegmentation.py").read_text().splitlines()
    assert len(lines) < 300, f"IWUOSegmentation.py has {len(lines)} lines"
