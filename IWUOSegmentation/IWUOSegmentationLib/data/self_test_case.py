"""The phantom case that ships with the module, with its precomputed analysis.

Why: stock Slicer has numpy, scipy and SimpleITK but no torch, nnU-Net or nilearn, and nothing may
be installed in its testing mode. The self-test replays simulated experts on this analysis, and
the Sample Data entry loads this case, so both work in a fresh Slicer.

Made by scripts/make_self_test_case.py: phantom seed 7 (below the demo model's training seeds),
channels and maps stored as compressed NIfTI, quantised to 8 bits with a NIfTI scale factor
(SimpleITK reads them back as float32), analysed with the bundled demo model (folds 0 and 1,
8 mirror flips) from the stored channels, so the analysis records their identity.
"""

from __future__ import annotations

from pathlib import Path

from .analysis_identity import file_sha256

SEED = 7
CASE_FOLDER = Path(__file__).resolve().parent / "self_test_data" / f"phantom_{SEED:04d}"
CHANNEL_FILES = {"FLAIR": "FLAIR.nii.gz", "T1c": "T1c.nii.gz"}
REFERENCE_FILE = "label.nii.gz"
#: Sample Data entry (category IWUOSegmentation) that loads this case: its button text too, since
#: `registerCustomSampleDataSource` takes no sampleDescription and SampleDataSource shows sampleName
#: when there is none (SampleData.py, 5.4-5.12); also the name `SampleData.downloadSample` takes.
SAMPLE_NAME = "IWUO brain tumour phantom"


def analysis_folder() -> Path:
    return CASE_FOLDER / "analysis"


def channel_paths() -> list[Path]:
    """The case's images in the demo model's channel order."""
    return [CASE_FOLDER / name for name in CHANNEL_FILES.values()]


def sample_data_source() -> dict:
    """Keyword arguments for `SampleData.SampleDataLogic.registerCustomSampleDataSource`.

    Local files as file:// URIs, the mechanism Slicer's own SampleData tests use (`path2uri`):
    `downloadFromSource` copies them into the cache with urllib and loads them with the given file
    types, so the entry works from the Sample Data button and from `SampleData.downloadSample(name)`
    alike (which ignores `customDownloader`). `loadFileType` (a list) is accepted from Slicer 5.6 on.
    """
    files = [*channel_paths(), CASE_FOLDER / REFERENCE_FILE]
    return {
        "sampleName": SAMPLE_NAME,
        "uris": [path.as_uri() for path in files],
        "fileNames": [f"IWUOPhantom{SEED:04d}_{path.name}" for path in files],
        "nodeNames": [f"Phantom{channel}" for channel in CHANNEL_FILES] + ["PhantomReference"],
        "loadFileType": ["VolumeFile"] * len(CHANNEL_FILES) + ["SegmentationFile"],
        "checksums": [f"SHA256:{file_sha256(path)}" for path in files],
    }
