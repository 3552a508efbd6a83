"""The Qt half of cli/analysis_process.py's protocol: a QProcess around one AnalysisRun (GUI layer).

PythonQt details (checked in Slicer's and PythonQt's sources): stderr arrives as a QByteArray,
read with `.data()` (the wrapper has no buffer protocol, `bytes()` fails); a process that fails
to start emits errorOccurred(FailedToStart) and never finished(); exitStatus says whether the
exit code is valid. Cancel goes through the run's cancel file and EOF on the child's stdin.
"""

import qt


class AnalysisProcess:
    """Starts `run` at once; `on_progress(fraction, message)` and `on_end(review_folder, outcome)` report back."""

    def __init__(self, run, on_progress, on_end):
        self.run, self.on_progress, self.on_end, self.running = run, on_progress, on_end, True
        command = run.prepare()
        self.process = qt.QProcess()
        self.process.setProcessChannelMode(qt.QProcess.SeparateChannels)
        self.process.connect("readyReadStandardError()", self._output)
        self.process.connect("finished(int,QProcess::ExitStatus)", self._finished)
        self.process.connect("errorOccurred(QProcess::ProcessError)", self._error)
        self.process.start(command[0], command[1:])

    def _output(self):
        self.run.feed_stderr(self.process.readAllStandardError().data().decode("utf-8", "replace"))
        self.on_progress(self.run.fraction, self.run.message)

    def _error(self, error):
        if error == qt.QProcess.FailedToStart:  # finished() never comes
            self._end(self.run.failed_to_start(self.process.errorString()))

    def _finished(self, exitCode, exitStatus):
        self._end(self.run.finished(exitCode, exitStatus == qt.QProcess.CrashExit))

    def _end(self, outcome):
        self.running = False
        self.on_end(self.run.folder.root, outcome)

    def cancel(self):
        """Ask the child to stop: the cancel file, and EOF on its stdin (PythonSlicer forwards no signal)."""
        if self.running:
            self.run.cancel()
            self.process.closeWriteChannel()
