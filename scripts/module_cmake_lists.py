"""Print the MODULE_PYTHON_SCRIPTS / MODULE_PYTHON_RESOURCES lists for IWUOSegmentation/CMakeLists.txt.

The module's CMake must list every file that has to be installed with the extension; the test
Testing/test_extension_layout.py fails when a file is missing. Run with --write after adding
files to update the lists in place (without it, the lists are printed).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent / "IWUOSegmentation"
SKIP_DIRS = {"__pycache__"}


def module_files() -> tuple[list[str], list[str]]:
    scripts, resources = [], []
    for path in sorted(MODULE.rglob("*")):
        if (not path.is_file() or SKIP_DIRS & set(path.parts) or path.name == "CMakeLists.txt"
                or any(part.endswith(".egg-info") for part in path.parts)):
            continue
        rel = path.relative_to(MODULE).as_posix()
        (scripts if path.suffix == ".py" else resources).append(rel)
    return scripts, resources


def cmake_block() -> str:
    scripts, resources = module_files()
    out = ["set(MODULE_PYTHON_SCRIPTS"] + [f"  {s.replace('IWUOSegmentation', '${MODULE_NAME}', 1)}" for s in scripts]
    out += ["  )", "", "set(MODULE_PYTHON_RESOURCES"]
    out += [f"  {r.replace('IWUOSegmentation', '${MODULE_NAME}', 1)}" for r in resources] + ["  )"]
    return "\n".join(out)


if __name__ == "__main__":
    if "--write" in sys.argv:
        cmake = MODULE / "CMakeLists.txt"
        text = cmake.read_text()
        text = re.sub(r"set\(MODULE_PYTHON_SCRIPTS.*?\n  \)\n\nset\(MODULE_PYTHON_RESOURCES.*?\n  \)",
                      lambda m: cmake_block(), text, flags=re.S)
        cmake.write_text(text)
    else:
        sys.stdout.write(cmake_block() + "\n")
