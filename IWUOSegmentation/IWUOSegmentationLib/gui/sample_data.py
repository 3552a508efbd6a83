"""The module's Sample Data entry: the phantom case that ships with the module (GUI layer, no download)."""

import os

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def registerSampleData():
    """'IWUO brain tumour phantom' in Sample Data: the shipped phantom case as file:// URIs
    (IWUOSegmentationLib.data.self_test_case.sample_data_source), so the Sample Data button and
    `SampleData.downloadSample(name)` both load it in stock Slicer (no nilearn, no customDownloader)."""
    try:
        import SampleData
    except ImportError:
        return
    from IWUOSegmentationLib.data.self_test_case import sample_data_source

    icon = os.path.join(MODULE_DIR, "Resources", "Icons", "IWUOSegmentation.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="IWUOSegmentation", thumbnailFileName=icon, **sample_data_source())
