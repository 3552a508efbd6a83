"""The module's Sample Data entry: a brain tumour phantom generated locally on demand (GUI layer)."""

import os

import slicer

PHANTOM_SAMPLE_NAME = "IWUOBrainTumourPhantom"
MODULE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def registerSampleData():
    """'IWUO brain tumour phantom' in Sample Data: generated locally on demand, no download."""
    try:
        import SampleData
    except ImportError:
        return
    icon = os.path.join(MODULE_DIR, "Resources", "Icons", "IWUOSegmentation.png")
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


