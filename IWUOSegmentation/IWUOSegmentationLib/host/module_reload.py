"""Reload this library in place, dependencies first, for Slicer's Reload and Reload and Test.

Why: `slicer.util.reloadScriptedModule` reloads only the module file; the library's modules stay in
`sys.modules`, so the reloaded module (and Reload and Test) would run the old code. SlicerNNUNet and
MONAIAuto3DSeg reload their Lib in `onReload` from a hand-kept list in dependency order; here the order
is read from the loaded modules themselves. What needs an order is what a module bound when it was
executed (`from .x import f` at the top, a class, a constant of a class from another module): a module is
reloaded after every module it took such a name from, so it binds the new objects. Imports inside
functions run again at each call and need no order.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Mapping


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def bound_dependencies(modules: Mapping[str, ModuleType], package: str) -> dict[str, set[str]]:
    """For each loaded module of `package`: the package's modules whose objects its globals hold (a module
    object, or a function, class or instance by the module that defined it)."""
    graph = {}
    for name, module in modules.items():
        if not _in_package(name, package) or module is None:
            continue
        found = set()
        for value in vars(module).values():
            source = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            if isinstance(source, str) and source != name and _in_package(source, package) and source in modules:
                found.add(source)
        graph[name] = found
    return graph


def reload_order(dependencies: Mapping[str, set[str]]) -> list[str]:
    """Every module of `dependencies` once, each after the modules it depends on (ties by name); a cycle,
    which the package's import rules forbid, is broken at its first module by name rather than dropped."""
    remaining = {name: set(deps) & set(dependencies) for name, deps in dependencies.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(name for name, deps in remaining.items() if not deps) or [min(remaining)]
        for name in ready:
            order.append(name)
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def reload_package(package: str) -> list[str]:
    """importlib.reload every loaded module of `package` (the name of a package in sys.modules) in
    reload_order; returns the names reloaded, in order."""
    loaded = {name: module for name, module in sys.modules.items() if _in_package(name, package) and module is not None}
    order = reload_order(bound_dependencies(loaded, package))
    for name in order:
        importlib.reload(loaded[name])
    return order
