"""The Qt half of cli/analysis_process.py's protocol: a QProcess around one AnalysisRun (GUI layer).

PythonQt details (checked in Slicer's and PythonQt's sources): stderr arrives as a QByteArray,
read with `.data()` (the wrapper has no buffer protocol, `bytes()` fails); exitStatus says whether
the exit code is valid. A process that fails to start never emits finished(): as Slicer's
DICOMLib/DICOMProcesses.py does, stateChanged(QProcess::ProcessState) is connected and error() read
once it is NotRunning (no Slicer module connects errorOccurred). Qt sets that error around the state
change in an order that differs between platforms and versions, so it is read when the event loop is
back (which also keeps on_end from running inside the constructor, when start() fails at once).
Cancel goes through the run's cancel file and EOF on the child's stdin.
"""

import qt


class AnalysisProcess:
    """Starts `run` at once; `on_progress(fraction, message)` and `on_end(run, outcome)` report back."""

    def __init__(self, run, on_progress, on_end):
        self.run, self.on_progress, self.on_end, self.running = run, on_progress, on_end, True
        command = run.prepare()
        self.process = qt.QProcess()
        self.process.setProcessChannelMode(qt.QProcess.SeparateChannels)
        self.process.connect("readyReadStandardError()", self._output)
        self.process.connect("finished(int,QProcess::ExitStatus)", self._finished)
        self.process.connect("stateChanged(QProcess::ProcessState)", self._state_changed)
        self.process.start(command[0], command[1:])

    def _output(self):
        self.run.feed_stderr(self.process.readAllStandardError().data().decode("utf-8", "replace"))
        self.on_progress(self.run.fraction, self.run.message)

    def _state_changed(self, state):
        if state == qt.QProcess.NotRunning:
            qt.QTimer.singleShot(0, self._check_started)

    def _check_started(self):
        if self.running and self.process.error() == qt.QProcess.FailedToStart:  # finished() never comes
            self._end(self.run.failed_to_start(self.process.errorString()))

    def _finished(self, exitCode, exitStatus):
        self._end(self.run.finished(exitCode, exitStatus == qt.QProcess.CrashExit))

    def _end(self, outcome):
        self.running = False
        self.on_end(self.run, outcome)

    def cancel(self):
        """Ask the child to stop: the cancel file, and EOF on its stdin (PythonSlicer forwards no signal)."""
        if self.running:
            self.run.cancel()
            self.process.closeWriteChannel()
