"""IWUOSegmentation scripted module: widgets only; the work lives in IWUOSegmentationLib.

Layers: IWUOSegmentationLib (pure core) -> IWUOSegmentationLib.mrml (MRML) -> this file (GUI).
"""

import json
import os
import pathlib
import tempfile
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, Default, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

PHANTOM_SAMPLE_NAME = "IWUOBrainTumourPhantom"
#: The heatmaps offered (IWUOSegmentationLib.mrml.review_workflow.OVERLAY_KINDS; a test keeps them equal).
OVERLAYS = ["entropy", "variance", "mutual_information", "disagreement", "impact"]


@parameterNodeWrapper
class IWUOSegmentationParameterNode:
    """The module's settings, saved with the scene; bound to the widgets named by SlicerParameterName in the .ui."""

    modelPath: pathlib.Path
    reviewFolder: pathlib.Path
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"]), Default("auto")]
    members: Annotated[str, Default("flips,folds")]
    overlay: Annotated[str, Choice(OVERLAYS), Default("entropy")]
    opacity: Annotated[float, WithinRange(0.0, 1.0), Default(0.5)]
    reference: vtkMRMLSegmentationNode


class IWUOSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "IWUO Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["IWUOSegmentation developers"]
        self.parent.helpText = (
            "Segment a brain tumour with a frozen nnU-Net v2 model, see where the model is uncertain and where "
            "correcting would matter most, and correct the slices ranked by Impact-Weighted Uncertainty "
            "Optimization (IWUO) with a logged correction budget.")
        self.parent.acknowledgementText = (
            "Uses nnU-Net v2 (Isensee et al., Nature Methods 2021). Demo phantoms are generated on the "
            "MNI152 2009a template shipped with nilearn.")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """'IWUO brain tumour phantom' in Sample Data: generated locally on demand, no download."""
    try:
        import SampleData
    except ImportError:
        return
    icon = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "IWUOSegmentation.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="IWUOSegmentation", sampleName=PHANTOM_SAMPLE_NAME,
        uris=["iwuo-generated:FLAIR", "iwuo-generated:T1c"], fileNames=["FLAIR.nii.gz", "T1c.nii.gz"],
        nodeNames=["PhantomFLAIR", "PhantomT1c"], thumbnailFileName=icon,
        customDownloader=_loadPhantomSample)


def _loadPhantomSample(source=None):
    """Generate phantom seed 7 into Slicer's cache and load it (volumes + reference segmentation)."""
    from IWUOSegmentationLib.phantom import write_phantoms

    cache = os.path.join(slicer.app.cachePath, "IWUOSegmentation", "phantoms")
    case_dir = os.path.join(cache, "phantom_0007")
    if not os.path.exists(os.path.join(case_dir, "label.nii.gz")):
        write_phantoms(cache, 1, seed=7, layout="cases")
    nodes = [slicer.util.loadVolume(os.path.join(case_dir, f"{c}.nii.gz"), {"name": f"Phantom{c}"})
             for c in ("FLAIR", "T1c")]
    reference = slicer.util.loadSegmentation(os.path.join(case_dir, "label.nii.gz"), {"name": "PhantomReference"})
    reference.SetAttribute("IWUO.role", "reference")
    return nodes


class IWUOSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Inputs -> Analyse (background process) -> Overlays. Review and budget arrive with the MRML session."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.process = None
        self.outputDir = None
        self.reviewFolder = None
        self.channelSelectors = []
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IWUOSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IWUOSegmentationLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelChanged)
        self.ui.analyzeButton.connect("clicked(bool)", self.onAnalyze)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.overlayComboBox.connect("currentIndexChanged(int)", self.onOverlayChanged)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOverlayChanged)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.hide()
        self.ui.segmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        self.ui.previousButton.connect("clicked(bool)", lambda _=None: self.onNavigate("previous"))
        self.ui.nextButton.connect("clicked(bool)", lambda _=None: self.onNavigate("next"))
        self.ui.skipButton.connect("clicked(bool)", lambda _=None: self.onNavigate("skip"))
        self.ui.correctedButton.connect("clicked(bool)", lambda _=None: self.onNavigate("mark_corrected"))
        self.ui.referenceSelector.setMRMLScene(slicer.mrmlScene)
        self.ui.referenceSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onReferenceChanged)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReport)
        self.ui.targetComboBox.connect("activated(int)", self.onTargetChanged)  # review target (issue 13)
        self.shortcuts = []
        for key, action in (("n", "next"), ("p", "previous"), ("s", "skip"), ("d", "mark_corrected")):
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.connect("activated()", lambda action=action: self.onNavigate(action))
            self.shortcuts.append(shortcut)
        self.budgetTimer = qt.QTimer()
        self.budgetTimer.setInterval(1000)
        self.budgetTimer.connect("timeout()", self.updateBudget)
        self.initializeParameterNode()
        self.onModelChanged(self.ui.modelPathLineEdit.currentPath)
        self.layout.addStretch(1)

    def initializeParameterNode(self):
        """Bind the scene's parameter node to the widgets; fill defaults the wrapper cannot know."""
        self.setParameterNode(self.logic.getParameterNode())
        if str(self._parameterNode.modelPath) in ("", "."):
            self._parameterNode.modelPath = pathlib.Path(self.logic.defaultModelPath())

    def setParameterNode(self, parameterNode):
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
        self._parameterNode = parameterNode
        if self._parameterNode is not None:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def onSceneStartClose(self, caller, event):
        """Before the scene goes: account for the last edits and save them, then let go of the session."""
        if self.logic.session is not None:
            self.logic.flushAndSave()
            self.logic.session.close()
            self.logic.session = None
        self.budgetTimer.stop()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()
        self.setParameterNode(None)
        self.onCancel()
        for shortcut in self.shortcuts:
            shortcut.disconnect("activated()")
        self.budgetTimer.stop()
        if self.logic.session is not None:
            self.logic.session.close()

    def enter(self):
        """Resume a review saved with the scene (the budget log on disk decides the progress)."""
        self.initializeParameterNode()
        if self.logic.session is not None or slicer.mrmlScene.GetFirstNodeByName("IWUO ranking") is None:
            return
        from IWUOSegmentationLib.errors import IWUOError

        try:
            session = self.logic.resumeReview()
        except (FileNotFoundError, ValueError, IWUOError) as exc:
            self.ui.statusLabel.text = str(exc)
            return
        session.on_dirty = lambda: qt.QTimer.singleShot(0, self.onEditFinished)
        self.ui.segmentEditorWidget.setSegmentationNode(session.segmentation)
        self.ui.segmentEditorWidget.setSourceVolumeNode(session.volume)
        self.ui.budgetProgressBar.maximum = len(session.ranking)
        self.showTargets(session.target)  # review target (issue 13)
        self.budgetTimer.start()
        self.updateBudget()

    def onModelChanged(self, path):
        """One volume selector per model channel, preselected by name."""
        for label, _selector in self.channelSelectors:
            self.ui.inputsFormLayout.removeRow(label)
        self.channelSelectors = []
        try:
            channels = self.logic.channelNames(path)
            self.ui.statusLabel.text = f"Model channels: {', '.join(channels)}"
        except Exception as exc:
            self.ui.statusLabel.text = str(exc)
            return
        for channel in channels:
            selector = slicer.qMRMLNodeComboBox()
            selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
            selector.noneEnabled = True
            selector.addEnabled = False
            selector.removeEnabled = False
            selector.setMRMLScene(slicer.mrmlScene)
            selector.setCurrentNode(self.logic.matchVolume(channel))
            label = qt.QLabel(f"{channel}:")
            self.ui.inputsFormLayout.addRow(label, selector)
            self.channelSelectors.append((label, selector))

    def onAnalyze(self):
        from IWUOSegmentationLib.gui.analysis_process import analyze_command
        from IWUOSegmentationLib.gui.dependencies import ensure_dependencies

        if not ensure_dependencies(lambda text: slicer.util.confirmOkCancelDisplay(text)):
            slicer.util.errorDisplay("The Python packages IWUOSegmentation needs are not installed.")
            return
        volumes = [selector.currentNode() for _, selector in self.channelSelectors]
        if not volumes or any(v is None for v in volumes):
            slicer.util.errorDisplay("Choose one volume for each model channel.")
            return
        folder = str(self._parameterNode.reviewFolder) if self._parameterNode is not None else ""
        if folder in ("", "."):
            folder = os.path.join(os.path.expanduser("~"), "IWUOSegmentation", volumes[0].GetName())
            if self._parameterNode is not None:
                self._parameterNode.reviewFolder = pathlib.Path(folder)
        from IWUOSegmentationLib.review_folder import ReviewFolder

        self.reviewFolder = ReviewFolder(folder)
        self.outputDir = str(self.reviewFolder.analysis)
        if self.reviewFolder.has_analysis():
            # an analysis (and maybe a review begun here or in the browser) is already there: continue it
            self.ui.statusLabel.text = f"Using the analysis in {self.outputDir}"
            self.loadResults()
            return
        work = tempfile.mkdtemp(prefix="iwuo_")
        inputs = []
        for i, volume in enumerate(volumes):
            path = os.path.join(work, f"input_{i:04d}.nrrd")
            slicer.util.exportNode(volume, path)
            inputs.append(path)
        command = analyze_command(self.ui.modelPathLineEdit.currentPath, inputs, self.outputDir,
                                  self.ui.deviceComboBox.currentText, self.ui.membersLineEdit.text)
        self.process = qt.QProcess()
        self.process.setProcessChannelMode(qt.QProcess.SeparateChannels)
        self.process.connect("readyReadStandardError()", self.onProcessOutput)
        self.process.connect("finished(int,QProcess::ExitStatus)", self.onProcessFinished)
        self.process.start(command[0], command[1:])
        self.ui.progressBar.show()
        self.ui.progressBar.value = 0
        self.ui.analyzeButton.enabled = False
        self.ui.cancelButton.enabled = True

    def onProcessOutput(self):
        from IWUOSegmentationLib.gui.analysis_process import parse_progress

        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            parsed = parse_progress(line)
            if parsed:
                self.ui.progressBar.value = int(parsed[0] * 100)
                self.ui.statusLabel.text = parsed[1]
            elif line.strip():
                self.ui.statusLabel.text = line.strip()[-200:]

    def onProcessFinished(self, exitCode, exitStatus):
        self.ui.analyzeButton.enabled = True
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.hide()
        if exitCode != 0:
            if exitCode != 4:
                slicer.util.errorDisplay(f"Analysis failed (exit code {exitCode}): {self.ui.statusLabel.text}")
            return
        self.loadResults()

    def loadResults(self):
        """Analysis folder -> segmentation, heatmaps and the review session (resumed if its log exists)."""
        background = self.channelSelectors[0][1].currentNode()
        segmentation = self.logic.loadAnalysis(self.reviewFolder, background, self.ui.modelPathLineEdit.currentPath)
        self.onOverlayChanged()
        session = self.logic.startReview(self.reviewFolder, background, segmentation)
        session.on_dirty = lambda: qt.QTimer.singleShot(0, self.onEditFinished)
        self.showTargets(session.target)  # review target (issue 13)
        editor = self.ui.segmentEditorWidget
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(background)
        editor.setActiveEffectByName("Paint")
        self.ui.budgetProgressBar.maximum = len(session.ranking)
        self.budgetTimer.start()
        self.onNavigate("next")

    # -- review target (issue 13): the logic re-ranks in the MRML layer; the log records the change --
    def showTargets(self, current):
        self.ui.targetComboBox.clear()
        for name in self.logic.reviewTargets():
            self.ui.targetComboBox.addItem(name)
        self.ui.targetComboBox.setCurrentIndex(max(self.ui.targetComboBox.findText(current), 0))

    def onTargetChanged(self, *_):
        if self.logic.session is None or self.ui.targetComboBox.currentText == self.logic.session.target:
            return
        from IWUOSegmentationLib.review_folder import ReviewFolder

        folder = ReviewFolder(self.logic.session.log.path.parent)  # also after a resumed scene
        session = self.logic.startReview(folder, self.logic.referenceVolume, self.logic.session.segmentation,
                                         target=self.ui.targetComboBox.currentText)
        session.on_dirty = lambda: qt.QTimer.singleShot(0, self.onEditFinished)
        self.ui.budgetProgressBar.maximum = len(session.ranking)
        self.onNavigate("next")

    def onNavigate(self, action):
        session = self.logic.session
        if session is None:
            return
        try:
            getattr(session, action)()
        except IndexError:
            pass
        self.updateBudget()

    def onEditFinished(self):
        if self.logic.session is not None:
            self.logic.flushAndSave()
            self.updateBudget()

    def updateBudget(self):
        """Budget bar: 'k of N slices · mm:ss', plus the estimated (and measured) Dice gain."""
        session = self.logic.session
        if session is None:
            return
        summary = session.log.summary()
        self.ui.budgetProgressBar.value = summary.slices_corrected
        minutes, seconds = divmod(int(summary.seconds_used), 60)
        text = (f"{summary.slices_corrected} of {len(session.ranking)} slices · {minutes:02d}:{seconds:02d} · "
                f"estimated Dice gain {summary.estimated_dice_gain:+.3f}")
        if summary.measured_dice is not None:
            text += f" · measured Dice {summary.measured_dice:.3f}"
        self.ui.budgetLabel.text = text
        if session.current_rank >= 0:
            self.ui.statusLabel.text = f"Rank {session.current_rank + 1}: slice {session.ranking[session.current_rank]}"

    def onExportReport(self):
        try:
            report = self.logic.exportReport()
        except Exception as exc:  # no session yet, unreadable log: say so in the panel
            self.ui.diceLabel.text = str(exc)
            return
        self.ui.diceLabel.text = f"Report written: {report}"

    def onReferenceChanged(self, node):
        message = self.logic.setReference(node)
        self.ui.diceLabel.text = message

    def onCancel(self):
        if self.process is not None and self.process.state() != qt.QProcess.NotRunning:
            self.process.terminate()
            self.ui.statusLabel.text = "Cancelled: no results were loaded."

    def onOverlayChanged(self, *_):
        if self.channelSelectors:
            self.logic.showOverlay(self.channelSelectors[0][1].currentNode(), self.ui.overlayComboBox.currentText,
                                   self.ui.opacitySlider.value)


class IWUOSegmentationLogic(ScriptedLoadableModuleLogic):
    """Facade for the GUI and for scripts; delegates to IWUOSegmentationLib."""

    def getParameterNode(self):
        return IWUOSegmentationParameterNode(super().getParameterNode())

    def exportReport(self):
        """review_report.md, review_log.csv and review_curve.png beside the session's budget log."""
        from IWUOSegmentationLib.review_report import write_review_report

        if self.session is None:
            raise ValueError("No review session yet: analyse a case first.")
        self.flushAndSave()
        return write_review_report(self.session.log.path)

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.overlays = {}
        self.session = None
        self.referenceVolume = None
        self.analysis = None

    def segmentEditorNode(self):
        """The scene's shared segment editor node (created once)."""
        node = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentEditorNode")
        return node if node is not None else slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")

    def startReview(self, reviewFolder, referenceVolume, segmentation, target=None):
        """Rank slices by IWUO for `target` (None: the log's, else all foreground) and open the review session of
        `reviewFolder` (shared with `iwuo review`)."""
        from IWUOSegmentationLib.mrml.review_workflow import open_review, show_target_impact

        if self.session is not None:
            self.session.close()
        self.referenceVolume = referenceVolume
        labels = json.loads(segmentation.GetAttribute("IWUO.labels") or "{}")
        self.session = open_review(slicer.mrmlScene, self.analysis, referenceVolume, segmentation, labels,
                                   reviewFolder.log, target=target)
        if "impact" in self.overlays:  # the impact overlay shows the ranked target
            show_target_impact(self.overlays["impact"], self.analysis, self.session.target)
        return self.session

    def reviewTargets(self):
        """Structures of the model to rank for, the default (all foreground) first."""
        from IWUOSegmentationLib.mrml.review_workflow import review_targets

        return review_targets(self.analysis) if self.analysis is not None else []

    def flushAndSave(self):
        """Account for pending edits; the session saves the corrected label map before it logs them."""
        if self.session is not None:
            self.session.flush_edits()

    def resumeReview(self):
        """The session of a reopened scene, up to date with its review folder (saved corrections, log)."""
        from IWUOSegmentationLib.mrml.review_workflow import resume_review_from_scene

        self.session, self.analysis = resume_review_from_scene(slicer.mrmlScene)
        self.referenceVolume = self.session.volume
        return self.session

    def setReference(self, referenceSegmentation):
        """Use a reference segmentation for measured Dice; it must share the input's grid."""
        if self.session is None or referenceSegmentation is None:
            if self.session is not None:
                self.session.reference = None
            return ""
        from IWUOSegmentationLib.mrml.analysis_nodes import reference_mask_on_volume

        try:
            reference = reference_mask_on_volume(referenceSegmentation, self.referenceVolume)
        except ValueError as exc:
            return str(exc)
        self.session.reference = reference
        dice = self.session.measured_dice()
        return f"Whole-tumour Dice against the reference: {dice:.3f} (resampled onto the input's grid)"

    def defaultModelPath(self):
        from IWUOSegmentationLib.demo_model import demo_model_folder

        return str(demo_model_folder())

    def channelNames(self, modelPath):
        from IWUOSegmentationLib.model_folder import open_model

        return open_model(modelPath).channel_names

    def matchVolume(self, channel):
        """First scalar volume whose name contains the channel name (case and punctuation ignored)."""
        key = "".join(ch for ch in channel.lower() if ch.isalnum())
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            name = "".join(ch for ch in node.GetName().lower() if ch.isalnum())
            if key and key in name:
                return node
        return None

    def loadAnalysis(self, reviewFolder, referenceVolume, modelPath):
        """Segmentation (saved corrections first) and heatmaps into the scene (shared with `iwuo review`)."""
        from IWUOSegmentationLib.model_folder import open_model
        from IWUOSegmentationLib.mrml.review_workflow import load_analysis_into_scene, read_corrected_segmentation

        model = open_model(modelPath)
        shape = slicer.util.arrayFromVolume(referenceVolume).shape
        corrected = read_corrected_segmentation(reviewFolder.corrected, shape)
        loaded = load_analysis_into_scene(slicer.mrmlScene, reviewFolder.analysis, referenceVolume,
                                          model.written_labels, corrected)
        self.analysis = loaded.analysis
        self.overlays = loaded.overlays
        return loaded.segmentation

    def showOverlay(self, backgroundVolume, name, opacity):
        from IWUOSegmentationLib.mrml.analysis_nodes import show_as_foreground

        if backgroundVolume is not None and name in self.overlays:
            show_as_foreground(slicer.mrmlScene, backgroundVolume, self.overlays[name], opacity)


class IWUOSegmentationTest(ScriptedLoadableModuleTest):
    """Self-test: phantom -> demo model -> scene -> review session -> simulated experts through the editor path."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_phantom_analysis_in_scene()

    def test_phantom_analysis_in_scene(self):
        from IWUOSegmentationLib.mrml.self_test import run_self_test

        result = run_self_test(slicer.mrmlScene, tempfile.mkdtemp(prefix="iwuo_selftest_"))
        self.assertGreaterEqual(result["dice_wt"], 0.5)
        self.assertGreater(result["perfect_dice"][-1], result["perfect_dice"][0])
        self.assertTrue(result["segments"])
        self.delayDisplay(f"IWUO self-test passed: {json.dumps(result)}")


# keep `vtk` imported for scripts that use this module's namespace (Slicer convention)
_ = vtk
