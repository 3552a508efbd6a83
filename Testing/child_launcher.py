"""A launcher like Slicer's PythonSlicer (CTKAppLauncher) for the tests of `iwuo` children (analysis, calibration).

The launcher starts the command as its child with inherited stdin/stderr (ForwardedChannels +
ForwardedInputChannel), returns its exit code and forwards no signal; the parent reads the child's stderr
as the module's QProcess does and feeds it to the run (cli/analysis_process.ChildRun).
"""

from __future__ import annotations

import subprocess
import sys
import threading

LAUNCHER = "import subprocess, sys; sys.exit(subprocess.Popen(sys.argv[1:]).wait())"


def start_through_a_launcher(run) -> subprocess.Popen:
    """Start `run`'s command through the launcher; its stderr is fed to `run` by a reader thread."""
    command = run.prepare()
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, *command], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def pump():
        for raw in iter(lambda: launcher.stderr.read1(4096), b""):
            run.feed_stderr(raw.decode("utf-8", "replace"))

    launcher.reader = threading.Thread(target=pump, daemon=True)
    launcher.reader.start()
    return launcher
