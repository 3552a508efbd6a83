"""The Python packages the analysis installs into Slicer's Python, and the ones it must never replace.

Why pure: what is asked of pip, and the check that Slicer's own builds survived, are decided here and
tested without Slicer; `gui/dependencies.py` only hands them to Slicer's installer.

- REQUIREMENTS are pyproject.toml's requirement strings for these packages (a test keeps them equal: the
  extension is not pip-installed in Slicer, so there is no package metadata to read them from at run time).
- PROTECTED are Slicer's own numpy, scipy and SimpleITK, and the torch the PyTorch extension installed.
  They are never installed or upgraded as a dependency: Slicer >= 5.12 skips them in `pip_ensure`'s
  dependency walk and gets a constraints file pinning them; older Slicer runs one `pip install` with that
  constraints file, so pip fails rather than replace them. After the install their versions are compared
  with those before (`replaced`), so a replacement cannot pass unnoticed.
- The pip arguments are a list, never one string: `slicer.util.pip_install(str)` splits its string with
  `shlex.split` in POSIX mode (Slicer 5.4-5.10), which drops the backslashes of a Windows path.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Mapping, Optional

#: import name -> pip requirement, as in pyproject.toml's [project] dependencies.
REQUIREMENTS = {
    "nnunetv2": "nnunetv2>=2.5",
    "matplotlib": "matplotlib>=3.7",
    "nilearn": "nilearn>=0.10",
}
#: Distributions that stay as Slicer (or its PyTorch extension) installed them.
PROTECTED = ("numpy", "scipy", "SimpleITK", "torch")


def installed_versions(names: tuple[str, ...] = PROTECTED) -> dict[str, Optional[str]]:
    """Distribution name -> installed version (None when pip does not know it), as on disk now."""
    importlib.invalidate_caches()
    found: dict[str, Optional[str]] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def constraints_text(versions: Mapping[str, Optional[str]]) -> str:
    """A pip constraints file holding each known version exactly ("numpy==1.26.4")."""
    return "".join(f"{name}=={v}\n" for name, v in versions.items() if v)


def pip_install_arguments(requirements: list[str], constraints_file: str | os.PathLike) -> list[str]:
    """Arguments for `slicer.util.pip_install` (a list, which it passes on unsplit): the requirements under
    the constraints file."""
    return [*requirements, "-c", os.fspath(constraints_file)]


def replaced(before: Mapping[str, Optional[str]], after: Mapping[str, Optional[str]]) -> list[str]:
    """'name old -> new' for each protected distribution whose version changed (appeared, vanished or moved)."""
    return [f"{name} {before.get(name) or 'none'} -> {after.get(name) or 'none'}"
            for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]
