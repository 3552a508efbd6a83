"""Run `iwuo analyze` as a background process with Slicer's own Python (GUI layer).

The GUI stays responsive: progress arrives as JSON lines on stderr and Cancel terminates the
process, whose own handler stops between sliding-window steps and writes nothing partial.
"""

from __future__ import annotations

import json
import os
import shutil
import sys


def python_executable() -> str:
    """Slicer's PythonSlicer launcher when present (sets up Slicer's environment), else this Python."""
    for name in ("PythonSlicer", "PythonSlicer.exe"):
        found = shutil.which(name) or (
            os.path.join(os.path.dirname(sys.executable), name)
            if os.path.exists(os.path.join(os.path.dirname(sys.executable), name)) else None)
        if found:
            return found
    return sys.executable


def analyze_command(model: str, inputs: list[str], output: str, device: str, members: str) -> list[str]:
    lib_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bootstrap = (f"import sys; sys.path.insert(0, {os.path.dirname(lib_parent)!r}); "
                 "from IWUOSegmentationLib.cli import main; sys.exit(main())")
    return [python_executable(), "-c", bootstrap, "--progress", "json", "analyze", "--model", model,
            "--input", *inputs, "--output", output, "--device", device, "--members", members]


def parse_progress(line: str) -> tuple[float, str] | None:
    """(fraction, message) from one stderr line, or None when it is not a progress line."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, TypeError):
        return None
    if isinstance(data, dict) and "progress" in data:
        return float(data["progress"]), str(data.get("message", ""))
    return None
