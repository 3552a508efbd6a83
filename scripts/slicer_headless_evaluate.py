"""Checkout shim: the script ships with the extension as IWUOSegmentationLib/cli/slicer_headless_evaluate.py."""

import os
import runpy

runpy.run_path(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "IWUOSegmentation",
                            "IWUOSegmentationLib", "cli", "slicer_headless_evaluate.py"), run_name="__main__")
