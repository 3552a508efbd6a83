"""Run `iwuo evaluate` inside Slicer's Python, headless, and exit with its status code.

Installed with the extension (IWUOSegmentationLib is in the module's folder), so it works outside
a checkout:

    Slicer --no-main-window --python-script <module folder>/IWUOSegmentationLib/cli/slicer_headless_evaluate.py -- \
        --cases DIR --model MODEL_FOLDER --out DIR [any other `iwuo evaluate` option]

The module folder is printed by `slicer.modules.iwuosegmentation.path` in Slicer's Python console.
The same script runs under plain Python (it puts its module folder on sys.path), which is how it is tested.
"""

from __future__ import annotations

import os
import sys

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if MODULE_DIR not in sys.path:
    sys.path.insert(0, MODULE_DIR)


def run(argv: list[str]) -> int:
    from IWUOSegmentationLib.cli import main

    return main(["evaluate", *argv])


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    code = run(args)
    slicer = sys.modules.get("slicer")  # loaded by Slicer before it runs a --python-script; never imported here
    if getattr(slicer, "app", None) is not None:
        slicer.util.exit(code)  # Slicer's own exit, with this exit code
    sys.exit(code)
