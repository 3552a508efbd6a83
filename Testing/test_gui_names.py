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
    """slicer.*, qt.*, ctk.*, SampleData.* attribute chains used in a file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            parts = []
            current = node
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name) and current.id in ("slicer", "qt", "ctk", "SampleData"):
                names.add(".".join([current.id, *reversed(parts)]))
    return names


def test_every_slicer_and_qt_name_the_gui_uses_was_checked_against_slicer_source():
    import json

    recorded = set(json.loads((Path(__file__).parent / "data" / "slicer_api_names.json").read_text())["names"])
    used = _dotted_names(MODULE / "IWUOSegmentation.py")
    for path in (MODULE / "IWUOSegmentationLib" / "gui").glob("*.py"):
        used |= _dotted_names(path)
    assert "slicer.util.loadUI" in used
    unchecked = sorted(used - recorded)
    assert not unchecked, f"names used by the GUI but not checked against Slicer's source: {unchecked}"
