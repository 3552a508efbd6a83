"""The review's MRML layer keeps one job per class, and the front ends reach the review only through the controller.

Both checks read the source with `ast`: no class in mrml/ has more than MAX_METHODS methods (public, private,
properties and class methods all count), and the front ends (the Slicer module and the browser app) touch no
review session: no `.session` attribute, and no method of the session or of its parts that the controller does
not offer itself.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent / "IWUOSegmentation"
LIB = MODULE / "IWUOSegmentationLib"
MAX_METHODS = 20
FRONT_ENDS = (MODULE / "IWUOSegmentation.py", LIB / "web" / "review_app.py")
#: The session's attributes that hold the parts it composes (navigation, edit accounting, log views).
SESSION_PARTS = {"navigation", "edits", "views"}


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _methods(cls: ast.ClassDef) -> list[str]:
    return [node.name for node in cls.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _self_attributes(cls: ast.ClassDef) -> set[str]:
    return {node.attr for node in ast.walk(cls) if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}


def classes_over_the_limit(sources: dict[str, str]) -> dict[str, int]:
    """'file:Class' -> method count, for each class with more than MAX_METHODS methods."""
    return {f"{name}:{cls.name}": len(_methods(cls)) for name, source in sources.items()
            for cls in _classes(ast.parse(source)).values() if len(_methods(cls)) > MAX_METHODS}


def _offered_by_the_controller() -> set[str]:
    """Methods and attributes of ReviewController, and the fields of the ReviewProgress it returns."""
    classes = _classes(ast.parse((LIB / "mrml" / "review_controller.py").read_text()))
    controller, progress = classes["ReviewController"], classes["ReviewProgress"]
    fields = {n.target.id for n in progress.body if isinstance(n, ast.AnnAssign)}
    return set(_methods(controller)) | _self_attributes(controller) | fields


def _session_methods() -> set[str]:
    """ReviewSession's methods and the attributes through which its parts are reached."""
    session = _classes(ast.parse((LIB / "mrml" / "review_session.py").read_text()))["ReviewSession"]
    assert SESSION_PARTS <= _self_attributes(session), "the session's parts were renamed: update SESSION_PARTS"
    return set(_methods(session)) - {"__init__"} | SESSION_PARTS


def session_uses(source: str, session_methods: set[str], offered: set[str]) -> list[str]:
    """Where `source` touches a review session: `.session` or a name `session`, or a session method (or part) that
    the controller does not offer, each as 'line: name'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name == "session" or (isinstance(node, ast.Attribute) and name in session_methods - offered):
            found.append((node.lineno, node.end_col_offset, name))
    return [f"{line}: {name}" for line, _, name in sorted(found)]


def test_no_class_in_the_mrml_layer_has_more_than_20_methods():
    sources = {path.name: path.read_text() for path in sorted((LIB / "mrml").glob("*.py"))}
    counts = {cls.name: len(_methods(cls)) for source in sources.values() for cls in _classes(ast.parse(source)).values()}
    assert counts["ReviewSession"] >= 10 and counts["ReviewController"] >= 10, counts  # the check sees them
    assert not classes_over_the_limit(sources), classes_over_the_limit(sources)
    bloated = "class Everything:\n" + "".join(f"    def job_{i}(self):\n        pass\n" for i in range(MAX_METHODS + 1))
    assert classes_over_the_limit({"x.py": bloated}) == {"x.py:Everything": MAX_METHODS + 1}


def test_the_front_ends_reach_the_review_only_through_the_controller():
    offered, methods = _offered_by_the_controller(), _session_methods()
    assert {"go_to", "close", "flush", "progress", "key"} <= offered and {"flush_edits", "mark_corrected"} <= methods
    for path in FRONT_ENDS:
        uses = session_uses(path.read_text(), methods, offered)
        assert not uses, f"{path.name} touches the review session directly (lines): {uses}"
    # the check finds the patterns the front ends used before: a session kept by hand, and its own methods
    before = textwrap.dedent("""
        self.session = self.controller.session
        self.controller.session.flush_edits()
        ui.ranking.navigation.set_status(0, "corrected")
        """)
    assert session_uses(before, methods, offered) == ["2: session", "2: session", "3: session", "3: flush_edits",
                                                      "4: navigation"]
