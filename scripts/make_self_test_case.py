"""Make the phantom case and its precomputed analysis that ship for the self-test and Sample Data.

    python scripts/make_self_test_case.py        (about a minute on 2 CPU cores)

Phantom seed 7 (never a training phantom of the demo model), its FLAIR and T1c quantised to
8 bits with a NIfTI scale factor, analysed with the bundled demo model (folds 0 and 1, 8 mirror
flips) from those stored channels, so that the analysis' recorded identity is the shipped
files'. The analysis maps are quantised the same way (the label map stays exact). Output:
IWUOSegmentation/IWUOSegmentationLib/data/self_test_data/phantom_0007/ (see self_test_case.py).
Needs the development environment (torch, nnU-Net, nilearn, nibabel); the result needs none.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "IWUOSegmentation"))


def quantise(source: Path, target: Path) -> None:
    """Float NIfTI -> uint8 NIfTI with scl_slope/scl_inter (1/255 of the range); geometry unchanged."""
    import nibabel as nib
    import numpy as np

    image = nib.load(str(source))
    data = np.asarray(image.dataobj, dtype=np.float32)
    header = image.header.copy()
    header.set_data_dtype(np.uint8)
    nib.save(nib.Nifti1Image(data, image.affine, header), str(target))


def main() -> None:
    os.environ.setdefault("nnUNet_def_n_proc", "2")
    from IWUOSegmentationLib.data.case_images import CaseImages
    from IWUOSegmentationLib.data.phantom import write_phantoms
    from IWUOSegmentationLib.data.self_test_case import CASE_FOLDER, CHANNEL_FILES, REFERENCE_FILE, SEED
    from IWUOSegmentationLib.nnunet.analysis import CaseAnalyzer
    from IWUOSegmentationLib.nnunet.analysis_settings import AnalysisSettings
    from IWUOSegmentationLib.nnunet.demo_model import FIRST_TRAINING_SEED, demo_model_folder
    from IWUOSegmentationLib.storage.atomic_files import atomic_write_text, folder_swapped_in

    assert SEED < FIRST_TRAINING_SEED
    analyzer = CaseAnalyzer.open(demo_model_folder(), AnalysisSettings(device="cpu"))
    model = analyzer.model
    assert model.channel_names == list(CHANNEL_FILES), model.channel_names
    with folder_swapped_in(CASE_FOLDER) as partial, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_phantoms(tmp, 1, seed=SEED, layout="cases")
        phantom = tmp / f"phantom_{SEED:04d}"
        for name in CHANNEL_FILES.values():
            quantise(phantom / name, partial / name)
        shutil.copy(phantom / REFERENCE_FILE, partial / REFERENCE_FILE)
        shutil.copy(phantom / "phantom.json", partial / "phantom.json")
        case = CaseImages.from_files([str(partial / name) for name in CHANNEL_FILES.values()])
        result = analyzer.analyze_into(case, tmp / "analysis")
        (partial / "analysis").mkdir()
        for path in sorted((tmp / "analysis").glob("*.nii.gz")):
            if path.name.startswith("segmentation"):
                shutil.copy(path, partial / "analysis" / path.name)
            else:
                quantise(path, partial / "analysis" / path.name)
        summary = json.loads((tmp / "analysis" / "summary.json").read_text())
        summary["model"]["path"] = f"<bundled demo model>/{model.path.parent.name}/{model.path.name}"
        summary["inputs"] = list(CHANNEL_FILES.values())
        summary["stored_as"] = "maps quantised to uint8 with a NIfTI scale factor (scripts/make_self_test_case.py)"
        atomic_write_text(partial / "analysis" / "summary.json", json.dumps(summary, indent=2) + "\n")
    total = sum(p.stat().st_size for p in CASE_FOLDER.rglob("*") if p.is_file())
    print(json.dumps({"folder": str(CASE_FOLDER), "bytes": total, "members": result.members,
                      "seconds": round(result.seconds, 1)}))


if __name__ == "__main__":
    main()
