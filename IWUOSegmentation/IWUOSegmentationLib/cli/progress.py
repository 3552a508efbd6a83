"""Progress and cancel for long commands: what a GUI running `iwuo` as a child process reads and sends.

Progress goes to stderr, as text or one JSON object per line ({"progress": 0.42, "message": "..."}).
Cancel comes from SIGTERM/SIGINT, a cancel file, or EOF on stdin (see analysis_process.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


class Progress:
    """Human-readable or JSON-lines progress on stderr."""

    def __init__(self, mode: str = "text"):
        self.mode = mode
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if self.mode == "none":
            return
        if self.mode == "json":
            print(json.dumps({"progress": round(float(fraction), 4), "message": message}), file=sys.stderr, flush=True)
            return
        now = time.time()
        if fraction >= 1.0 or now - self._last > 1.0:
            self._last = now
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)


class CancelFlag:
    """Set by SIGTERM/SIGINT, by a cancel file appearing, or by EOF on stdin, so a run stops between
    sliding-window steps and writes nothing partial.

    The file and stdin channels exist for GUIs that start this command through a launcher
    (Slicer's PythonSlicer is CTKAppLauncher): a launcher forwards no signal, but the file is
    seen by the real child and the child inherits the launcher's stdin (analysis_process.py).
    """

    def __init__(self, cancel_file: str | None = None, stdin_eof: bool = False) -> None:
        self.cancelled = False
        self.cancel_file = Path(cancel_file) if cancel_file else None
        self._previous = {sig: signal.signal(sig, self._set) for sig in (signal.SIGTERM, signal.SIGINT)}
        if stdin_eof:
            import threading

            threading.Thread(target=self._wait_for_eof, daemon=True).start()

    def _wait_for_eof(self) -> None:
        # The raw descriptor, not sys.stdin: a daemon thread blocked in a buffered read makes the
        # interpreter abort at exit ("could not acquire lock for <stdin>").
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            return  # no readable stdin: this channel is off
        self.cancelled = True

    def restore(self) -> None:
        """Give the signals back (a server started afterwards must stop on Ctrl-C / SIGTERM)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _set(self, *_):
        self.cancelled = True

    def __call__(self) -> bool:
        if not self.cancelled and self.cancel_file is not None and self.cancel_file.exists():
            self.cancelled = True
        return self.cancelled
