"""The module's ScriptedLoadableModuleTest (GUI layer); IWUOSegmentation.py imports it into its namespace,
where Slicer's test runner (slicer_add_python_unittest, "Reload and Test") finds IWUOSegmentationTest."""

import json
import tempfile

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


class IWUOSegmentationTest(ScriptedLoadableModuleTest):
    """Self-test on the phantom analysis that ships with the module (stock Slicer: numpy, scipy, SimpleITK only);
    with torch and nnU-Net installed, the bundled model also re-analyses the phantom."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_phantom_analysis_in_scene()
        self.setUp()
        self.test_inference_when_torch_is_installed()

    def test_phantom_analysis_in_scene(self):
        from IWUOSegmentationLib.mrml.self_test import run_self_test

        result = run_self_test(slicer.mrmlScene, tempfile.mkdtemp(prefix="iwuo_selftest_"))
        self.assertGreaterEqual(result["dice_wt"], 0.5)
        self.assertGreater(result["perfect_dice"][-1], result["perfect_dice"][0])
        self.assertTrue(result["segments"])
        self.delayDisplay(f"IWUO self-test passed: {json.dumps(result)}")

    def test_inference_when_torch_is_installed(self):
        import importlib.util

        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("nnunetv2") is None:
            self.delayDisplay("torch or nnU-Net is not installed: the inference check is skipped.")
            return
        from IWUOSegmentationLib.mrml.self_test import run_inference_check

        result = run_inference_check(tempfile.mkdtemp(prefix="iwuo_selftest_"))
        self.delayDisplay(f"IWUO inference check passed: {json.dumps(result)}")

