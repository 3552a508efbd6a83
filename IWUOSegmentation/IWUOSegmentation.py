"""IWUOSegmentation scripted module: widgets only; the work lives in IWUOSegmentationLib.

Layers: IWUOSegmentationLib (pure core) -> IWUOSegmentationLib.mrml (MRML) -> this file (GUI).
"""

import json
import os
import tempfile

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

PHANTOM_SAMPLE_NAME = "IWUOBrainTumourPhantom"


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
        self.channelSelectors = []

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IWUOSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IWUOSegmentationLogic()
        self.ui.deviceComboBox.addItems(["auto", "cpu", "cuda", "mps"])
        self.ui.membersLineEdit.text = "flips,folds"
        self.ui.modelPathLineEdit.currentPath = self.logic.defaultModelPath()
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelChanged)
        self.ui.analyzeButton.connect("clicked(bool)", self.onAnalyze)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.overlayComboBox.addItems(["entropy", "variance", "mutual_information", "disagreement"])
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
        self.shortcuts = []
        for key, action in (("n", "next"), ("p", "previous"), ("s", "skip"), ("d", "mark_corrected")):
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.connect("activated()", lambda action=action: self.onNavigate(action))
            self.shortcuts.append(shortcut)
        self.budgetTimer = qt.QTimer()
        self.budgetTimer.setInterval(1000)
        self.budgetTimer.connect("timeout()", self.updateBudget)
        self.onModelChanged(self.ui.modelPathLineEdit.currentPath)
        self.layout.addStretch(1)

    def cleanup(self):
        self.removeObservers()
        self.onCancel()
        for shortcut in self.shortcuts:
            shortcut.disconnect("activated()")
        self.budgetTimer.stop()
        if self.logic.session is not None:
            self.logic.session.close()

    def enter(self):
        """Resume a review saved with the scene (the budget log on disk decides the progress)."""
        if self.logic.session is not None or slicer.mrmlScene.GetFirstNodeByName("IWUO ranking") is None:
            return
        try:
            session = self.logic.resumeReview()
        except (FileNotFoundError, ValueError) as exc:
            self.ui.statusLabel.text = str(exc)
            return
        session.on_dirty = lambda: qt.QTimer.singleShot(0, self.onEditFinished)
        self.ui.segmentEditorWidget.setSegmentationNode(session.segmentation)
        self.ui.segmentEditorWidget.setSourceVolumeNode(session.volume)
        self.ui.budgetProgressBar.maximum = len(session.ranking)
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
        work = tempfile.mkdtemp(prefix="iwuo_")
        inputs = []
        for i, volume in enumerate(volumes):
            path = os.path.join(work, f"input_{i:04d}.nrrd")
            slicer.util.exportNode(volume, path)
            inputs.append(path)
        self.outputDir = os.path.join(work, "analysis")
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
        background = self.channelSelectors[0][1].currentNode()
        segmentation = self.logic.loadAnalysis(self.outputDir, background, self.ui.modelPathLineEdit.currentPath)
        self.onOverlayChanged()
        session = self.logic.startReview(self.outputDir, background, segmentation)
        session.on_dirty = lambda: qt.QTimer.singleShot(0, self.onEditFinished)
        editor = self.ui.segmentEditorWidget
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(background)
        editor.setActiveEffectByName("Paint")
        self.ui.budgetProgressBar.maximum = len(session.ranking)
        self.budgetTimer.start()
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
            self.logic.session.flush_edits()
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

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.overlays = {}
        self.session = None
        self.referenceVolume = None

    def segmentEditorNode(self):
        """The scene's shared segment editor node (created once)."""
        node = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentEditorNode")
        return node if node is not None else slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")

    def startReview(self, analysisFolder, referenceVolume, segmentation):
        """Rank slices by IWUO (whole tumour, entropy) and open a review session logged next to the analysis."""
        from IWUOSegmentationLib.analysis_files import read_analysis
        from IWUOSegmentationLib.mrml.review_session import ReviewSession
        from IWUOSegmentationLib.slice_scores import iwuo_ranking

        analysis = read_analysis(analysisFolder)
        axis, _, rows = iwuo_ranking(analysis.label_map, analysis.probabilities, analysis.summary["outputs"],
                                     analysis.summary["region_based"], analysis.uncertainty["entropy"],
                                     analysis.reference.GetSpacing())
        labels = json.loads(segmentation.GetAttribute("IWUO.labels") or "{}")
        if self.session is not None:
            self.session.close()
        self.referenceVolume = referenceVolume
        self.session = ReviewSession(slicer.mrmlScene, referenceVolume, segmentation,
                                     os.path.join(analysisFolder, "review.budget.jsonl"), ranking=rows, axis=axis,
                                     label_values=labels)
        return self.session

    def resumeReview(self):
        from IWUOSegmentationLib.mrml.review_session import ReviewSession

        self.session = ReviewSession.restore(slicer.mrmlScene)
        self.referenceVolume = self.session.volume
        labels = json.loads(self.session.segmentation.GetAttribute("IWUO.labels") or "{}")
        self.session.label_values = labels
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

    def loadAnalysis(self, folder, referenceVolume, modelPath):
        from IWUOSegmentationLib.analysis_files import UNCERTAINTY_MAPS, read_analysis
        from IWUOSegmentationLib.model_folder import open_model
        from IWUOSegmentationLib.mrml.analysis_nodes import add_heatmap_volume, add_segmentation, place_in_study

        analysis = read_analysis(folder)
        model = open_model(modelPath)
        scene = slicer.mrmlScene
        segmentation = add_segmentation(scene, analysis.label_map, referenceVolume, model.written_labels,
                                        f"{referenceVolume.GetName()} IWUO segmentation")
        segmentation.SetAttribute("IWUO.labels", json.dumps({k: v for k, v in model.written_labels.items() if v}))
        place_in_study(scene, segmentation, referenceVolume)
        self.overlays = {}
        for name in UNCERTAINTY_MAPS:
            node = add_heatmap_volume(scene, analysis.uncertainty[name], referenceVolume,
                                      f"{referenceVolume.GetName()} {name}")
            place_in_study(scene, node, referenceVolume)
            self.overlays[name] = node
        with open(os.path.join(folder, "summary.json")) as f:
            segmentation.SetAttribute("IWUO.summary", json.dumps(json.load(f)["members"]))
        return segmentation

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
