"""The package's import graph: no cycles, and every import runs down the layers (docs/architecture.md).

Every import counts, including those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "IWUOSegmentation" / "IWUOSegmentationLib"
PACKAGE = LIB.name

#: Layer of each sub-package: a module may import its own package and any lower layer, never a higher or
#: equal one (two packages on one layer are independent). The pure core is layers 0-4, then the MRML layer,
#: then the front ends (the browser app, the command line that starts it, the Slicer module's Qt side).
LAYERS = {
    "errors": 0,
    "storage": 1, "host": 1,
    "data": 2,
    "nnunet": 3, "ranking": 3,
    "review": 4, "simulation": 4,
    "mrml": 5,
    "web": 6,
    "cli": 7,
    "gui": 8,
}


def _modules(root: Path = LIB) -> dict[str, Path]:
    mods = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _inside(module: str) -> str | None:
    """A dotted name relative to the package, None outside it."""
    if module == PACKAGE:
        return ""
    return module[len(PACKAGE) + 1:] if module.startswith(PACKAGE + ".") else None


def import_graph(root: Path = LIB) -> dict[str, set[str]]:
    """module -> modules of this package it imports ("" is the package's own __init__)."""
    mods = _modules(root)
    graph = {}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [_inside(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = _inside(node.module or "")
                # `from pkg import mod` depends on pkg.mod; `from mod import name` on mod
                found = [f"{module}.{a.name}".strip(".") if f"{module}.{a.name}".strip(".") in mods else module
                         for a in node.names] if module is not None else []
            else:
                continue
            deps.update(m for m in found if m is not None and m in mods and m != name)
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in graph.items():
        if not module:
            continue
        own = module.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            if other != own and LAYERS[other] >= LAYERS[own]:
                bad.append(f"{module} -> {dep} (layer {LAYERS[own]} imports layer {LAYERS[other]})")
    return sorted(bad)


def test_every_module_belongs_to_a_layer():
    unplaced = sorted(m for m in import_graph() if m and m.split(".")[0] not in LAYERS)
    assert not unplaced, f"modules outside the declared layers (add the package to LAYERS and docs): {unplaced}"


def test_import_graph_has_no_cycles():
    assert find_cycles(import_graph()) == []


def test_imports_run_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path):
    """The checks themselves: a planted cycle and a core module importing a front end are both reported."""
    lib = tmp_path / PACKAGE
    for folder in ("data", "web"):
        (lib / folder).mkdir(parents=True)
        (lib / folder / "__init__.py").write_text("")
    (lib / "__init__.py").write_text("")
    (lib / "data" / "a.py").write_text("from . import b\n")
    (lib / "data" / "b.py").write_text("def f():\n    from .a import g\n")
    (lib / "data" / "c.py").write_text(f"from {PACKAGE}.web import app\n")
    (lib / "web" / "app.py").write_text("from ..data import c\n")
    graph = import_graph(lib)
    assert ["data.a", "data.b", "data.a"] in find_cycles(graph)
    assert upward_imports(graph) == ["data.c -> web.app (layer 2 imports layer 6)"]
