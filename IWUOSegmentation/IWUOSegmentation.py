"""IWUOSegmentation scripted module: widgets, connections and one-line calls into IWUOSegmentationLib, whose
mrml/review_controller.py (tested on slicer-core) and analysis_process.py (tested through a launcher) decide."""

import pathlib
import time
from typing import Annotated

import qt
import slicer

from IWUOSegmentationLib.host.slicer_version import check_slicer_version

check_slicer_version(slicer.app.majorVersion, slicer.app.minorVersion)  # before the imports Slicer 5.2 lacks
from slicer import vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, Default, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from IWUOSegmentationLib.cli.calibration_process import calibration_run
from IWUOSegmentationLib.gui import channel_selectors, path_parameter, segment_editor  # noqa: F401 (path_parameter: binding)
from IWUOSegmentationLib.gui.analysis_inputs import analysis_run
from IWUOSegmentationLib.gui.dependencies import ensure_dependencies
from IWUOSegmentationLib.gui.module_test import IWUOSegmentationTest  # noqa: F401 (Slicer runs it from here)
from IWUOSegmentationLib.gui.qt_analysis import AnalysisProcess
from IWUOSegmentationLib.gui.sample_data import registerSampleData
from IWUOSegmentationLib.gui.shortcuts import install_shortcuts, remove_shortcuts
from IWUOSegmentationLib.host.module_reload import reload_package
from IWUOSegmentationLib.mrml.review_controller import (
    ACTIONS,
    ReviewController,
    deactivate_editor_effect,
    model_channels,
    open_analysed,
    prepare_analysis,
)
from IWUOSegmentationLib.mrml.review_workflow import OVERLAY_KINDS
from IWUOSegmentationLib.nnunet.analysis_settings import DEFAULT_MEMBERS_TEXT
from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder

DOCUMENTATION = "https://github.com/iwuo-segmentation/SlicerIWUOSegmentation#install-in-3d-slicer"


@parameterNodeWrapper
class IWUOSegmentationParameterNode:
    """The module's settings, saved with the scene; bound to the widgets named by SlicerParameterName in the .ui."""

    modelPath: pathlib.Path
    reviewFolder: Annotated[str, Default("")]  # a str: a Path's default shows "." (gui/path_parameter.py)
    calibration: Annotated[str, Default("")]  # a file, "none", or empty: the one saved for the model (iwuo calibrate)
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"]), Default("auto")]
    members: Annotated[str, Default(DEFAULT_MEMBERS_TEXT)]
    overlay: Annotated[str, Choice(list(OVERLAY_KINDS)), Default(OVERLAY_KINDS[0])]
    opacity: Annotated[float, WithinRange(0.0, 1.0), Default(0.5)]
    reference: vtkMRMLSegmentationNode


class IWUOSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("IWUO Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "SubjectHierarchy"]
        self.parent.contributors = ["IWUOSegmentation developers (IWUOSegmentation project)"]
        self.parent.helpText = _(
            "Segment a brain tumour with a frozen nnU-Net v2 model, see where the model is uncertain and where "
            "correcting would matter most, and correct the slices ranked by Impact-Weighted Uncertainty "
            "Optimization (IWUO) with a logged correction budget.")
        self.parent.helpText += f' <a href="{DOCUMENTATION}">{_("Documentation")}</a>'
        self.parent.acknowledgementText = _(
            "Uses nnU-Net v2 (Isensee et al., Nature Methods 2021). Demo phantoms are generated on the "
            "MNI152 2009a template shipped with nilearn.")
        slicer.app.connect("startupCompleted()", registerSampleData)


class IWUOSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Inputs -> Analyse (background process) -> overlays, guided review and budget (ReviewController)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.analysis = self._parameterNode = self._parameterNodeGuiTag = None
        self.channelSelectors, self.shortcuts, self._budgetText, self._reviewStart = [], [], "", time.monotonic()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IWUOSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IWUOSegmentationLogic()
        self.controller = ReviewController(slicer.mrmlScene, schedule=lambda account: qt.QTimer.singleShot(0, account),
                                           on_logged=lambda _event: self.updateReview())
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndClose)
        ui = self.ui
        for widget, signal, slot in (
                (ui.modelPathLineEdit, "currentPathChanged(QString)", self.onModelChanged),
                (ui.analyzeButton, "clicked(bool)", self.onAnalyze), (ui.cancelButton, "clicked(bool)", self.onCancel),
                (ui.overlayComboBox, "currentIndexChanged(int)", self.onOverlayChanged),
                (ui.opacitySlider, "valueChanged(double)", self.onOverlayChanged),
                (ui.referenceSelector, "currentNodeChanged(vtkMRMLNode*)", self.onReferenceChanged),
                (ui.exportReportButton, "clicked(bool)", self.onExportReport),
                (ui.exportDatasetButton, "clicked(bool)", self.onExportDataset),
                (ui.calibrateButton, "clicked(bool)", self.onCalibrate),
                (ui.targetComboBox, "activated(int)", self.onTargetChanged)):
            widget.connect(signal, slot)
        for button, action in zip((ui.previousButton, ui.nextButton, ui.skipButton, ui.correctedButton), ACTIONS):
            button.connect("clicked(bool)", lambda checked=None, name=action.name: self.onAction(name))
        ui.referenceSelector.setMRMLScene(slicer.mrmlScene)
        ui.segmentEditorWidget.setMRMLScene(slicer.mrmlScene)
        segment_editor.select_node(ui.segmentEditorWidget, slicer.mrmlScene)
        ui.progressBar.hide()
        self.elapsedTimer = qt.QTimer()  # ticks the elapsed time of this visit only; reads no file
        self.elapsedTimer.connect("timeout()", self.showBudget)
        self.initializeParameterNode()
        self.onModelChanged(ui.modelPathLineEdit.currentPath)
        self.layout.addStretch(1)
        if self.parent.isEntered:  # Reload runs setup() again but not enter(): keys and review come back
            self.enter()

    def onReload(self):
        reload_package("IWUOSegmentationLib")  # the library first, dependencies first: Reload and Test runs new code
        ScriptedLoadableModuleWidget.onReload(self)

    def initializeParameterNode(self):
        """Bind the scene's parameter node to the widgets; fill defaults the wrapper cannot know."""
        self.setParameterNode(self.logic.getParameterNode())
        if str(self._parameterNode.modelPath) in ("", "."):
            self._parameterNode.modelPath = pathlib.Path(demo_model_folder())
        if self._parameterNode.reviewFolder == ".":  # saved as a Path before: "." meant none chosen
            self._parameterNode.reviewFolder = ""

    def setParameterNode(self, parameterNode):
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode, self._parameterNodeGuiTag = parameterNode, None
        if parameterNode is not None:
            self._parameterNodeGuiTag = parameterNode.connectGui(self.ui)

    def enter(self):
        """Shortcuts on; a review the scene holds (a reopened scene) is resumed."""
        self.initializeParameterNode()
        segment_editor.select_node(self.ui.segmentEditorWidget, slicer.mrmlScene)
        self.shortcuts = install_shortcuts(self.onAction, self.shortcuts)
        resumed, problem = self.controller.resume_saved_review()  # a failure is said once, in the status line
        if resumed:
            self.showReview()
        self.ui.statusLabel.text = problem or self.ui.statusLabel.text

    def exit(self):
        """Leaving the module: no shortcut and no active effect stay behind to edit the review elsewhere."""
        segment_editor.deactivate(self.ui.segmentEditorWidget)
        self.shortcuts = remove_shortcuts(self.shortcuts)
        self.controller.flush()

    def onSceneStartClose(self, caller, event):
        """Before the scene goes: save the last edits, forget every node (IDs are reused after Clear())."""
        self.controller.scene_about_to_close()
        segment_editor.let_go(self.ui.segmentEditorWidget)
        self.elapsedTimer.stop()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        """After a close, or an import (a saved review opened while the module is shown: resumed by enter())."""
        segment_editor.select_node(self.ui.segmentEditorWidget, slicer.mrmlScene)
        deactivate_editor_effect(slicer.mrmlScene)  # the Paint a scene saved restores would edit outside the module
        if self.parent.isEntered:
            self.enter()

    def cleanup(self):
        self.removeObservers()
        self.setParameterNode(None)
        self.onCancel()
        self.shortcuts = remove_shortcuts(self.shortcuts)
        self.elapsedTimer.stop()
        self.controller.on_logged.clear()  # the widgets are going: the last edits are logged, not shown
        self.controller.close()
        segment_editor.detach(self.ui.segmentEditorWidget)  # after Reload, one editor on the node and the views

    def onModelChanged(self, path):
        """One volume selector per model channel, preselected by name."""
        channels, self.ui.statusLabel.text = model_channels(path)
        self.channelSelectors = channel_selectors.replace_channel_selectors(self.ui.inputsFormLayout,
                                                                            self.channelSelectors, channels)

    def onAnalyze(self):
        """Open the case's review when its folder has an analysis; else start the analysis child."""
        volumes = [selector.currentNode() for _label, selector in self.channelSelectors]
        self.ui.analyzeButton.enabled = False  # pip may process events: no second click during an install
        try:
            with slicer.util.tryWithErrorDisplay(_("Could not analyse the case."), waitCursor=True):
                folder, inputs, reuse = prepare_analysis(self.controller, volumes, self._parameterNode.reviewFolder,
                                                         self.ui.modelPathLineEdit.currentPath, self._parameterNode.calibration)
                self._parameterNode.reviewFolder = folder
                if reuse:  # reading an analysis needs no torch: no install asked for
                    self.openReview(folder, inputs)
                    return
                ensure_dependencies(slicer.util.confirmOkCancelDisplay)
                self.startProcess(analysis_run(volumes, folder, self.ui.deviceComboBox.currentText,
                                               self.ui.membersLineEdit.text, inputs, self._parameterNode.calibration))
        finally:
            self.ui.analyzeButton.enabled = self.analysis is None or not self.analysis.running

    def onCalibrate(self):
        """Fit the calibration to every review beside this one (iwuo calibrate as a child: tens of seconds)."""
        with slicer.util.tryWithErrorDisplay(_("Could not calibrate to these reviews."), waitCursor=True):
            self.startProcess(calibration_run(self.controller.folder, self.ui.modelPathLineEdit.currentPath))

    def startProcess(self, run):
        self.analysis = AnalysisProcess(run, self.onProgress, self.onAnalysisEnd)  # an analysis or a calibration
        self.ui.progressBar.show()
        self.ui.cancelButton.enabled, self.ui.analyzeButton.enabled, self.ui.calibrateButton.enabled = True, False, False

    def onProgress(self, fraction, message):
        self.ui.progressBar.value, self.ui.statusLabel.text = int(fraction * 100), message

    def onAnalysisEnd(self, run, outcome):
        self.ui.analyzeButton.enabled, self.ui.calibrateButton.enabled, self.ui.cancelButton.enabled = True, True, False
        self.ui.progressBar.hide()
        self.ui.statusLabel.text = outcome.message
        if outcome.failed:
            slicer.util.errorDisplay(outcome.message)
        if outcome.load:
            with slicer.util.tryWithErrorDisplay(_("Could not load the analysis."), waitCursor=True):
                self.openReview(run.folder.root, run.review_inputs())

    def onCancel(self):
        if self.analysis is not None and self.analysis.running:
            self.analysis.cancel()
            self.ui.statusLabel.text = _("Cancelling...")

    def openReview(self, folder, inputs):
        open_analysed(self.controller, folder, **inputs)  # the volumes gone since the start (scene closed): one line
        self.showReview()

    def showReview(self):
        editor = self.ui.segmentEditorWidget
        editor.setSegmentationNode(self.controller.segmentation)
        editor.setSourceVolumeNode(self.controller.volume)
        editor.setActiveEffectByName("Paint")
        self.ui.referenceSelector.setCurrentNode(self.controller.reference)
        self.ui.targetComboBox.clear()
        self.ui.targetComboBox.addItems(self.controller.targets())
        self.ui.targetComboBox.setCurrentText(self.controller.progress().target)
        self._reviewStart = time.monotonic()
        self.onOverlayChanged()
        self.elapsedTimer.start(1000)
        self.updateReview()

    def onTargetChanged(self, _index):
        self.controller.set_target(self.ui.targetComboBox.currentText)
        self.updateReview()

    def onAction(self, name):
        self.controller.act(name)
        self.updateReview()

    def updateReview(self):
        """Status line and budget from the controller's memory (one look at the log), on each logged event or action."""
        progress = self.controller.progress()
        self.ui.budgetProgressBar.maximum, self.ui.budgetProgressBar.value = progress.budget_slices, progress.slices_corrected
        self._budgetText, self.ui.statusLabel.text = progress.budget_text, progress.status_text
        self.showBudget()

    def showBudget(self):
        minutes, seconds = divmod(int(time.monotonic() - self._reviewStart), 60)
        visit = _("this visit {time}").format(time=f"{minutes:02d}:{seconds:02d}")
        self.ui.budgetLabel.text = f"{self._budgetText} · {visit}" if self._budgetText else ""

    def onExportReport(self):
        with slicer.util.tryWithErrorDisplay(_("Could not write the review report."), waitCursor=True):
            self.ui.diceLabel.text = _("Report written: {path}").format(path=self.controller.export_report())

    def onExportDataset(self):
        parent = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder for the nnU-Net dataset"))
        with slicer.util.tryWithErrorDisplay(_("Could not export the corrected cases."), waitCursor=True):
            if parent:
                self.ui.diceLabel.text = self.controller.export_training_dataset(parent, self.ui.modelPathLineEdit.currentPath)

    def onReferenceChanged(self, node):
        self.ui.diceLabel.text = self.controller.set_reference(node)
        self.updateReview()

    def onOverlayChanged(self, *_args):
        self.controller.show_overlay(self.ui.overlayComboBox.currentText, self.ui.opacitySlider.value)


class IWUOSegmentationLogic(ScriptedLoadableModuleLogic):
    """The module's parameter node; everything else is in IWUOSegmentationLib (mrml.review_controller)."""

    def getParameterNode(self):
        return IWUOSegmentationParameterNode(super().getParameterNode())
