"""The review folder: one place per case that both front ends read and write.

    <review folder>/analysis/                       `iwuo analyze` output (summary.json, maps)
    <review folder>/review.budget.jsonl             the BudgetLog (source of truth of the review)
    <review folder>/corrected_segmentation.nii.gz   the corrected label map, rewritten atomically per edit
    <review folder>/inputs/input_0000.nii.gz ...    the analysed images, one per model channel, saved when the
                                                    review starts so that corrections can become training data
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..storage.atomic_files import atomic_write_file, atomic_write_image

#: Formats kept as the user's own file (copied byte for byte); anything else is written as NIfTI.
_SINGLE_FILE_FORMATS = (".nii.gz", ".nii", ".nrrd", ".mha")
_INPUT_RE = re.compile(r"^input_(\d{4})\.")


def _in_folder(name: str) -> property:
    """The path of `name` in the review folder (the layout above), as a read-only attribute."""
    return property(lambda folder: folder.root / name)


@dataclass(frozen=True)
class ReviewFolder:
    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    analysis = _in_folder("analysis")
    log = _in_folder("review.budget.jsonl")
    corrected = _in_folder("corrected_segmentation.nii.gz")
    inputs = _in_folder("inputs")

    def has_analysis(self) -> bool:
        return (self.analysis / "summary.json").is_file()

    def input_images(self) -> list[Path]:
        """The saved input images in channel order (empty when the review saved none)."""
        if not self.inputs.is_dir():
            return []
        newest: dict[int, Path] = {}  # one file per channel: the latest written (another format may linger)
        for path in self.inputs.iterdir():
            match = _INPUT_RE.match(path.name)
            if match and path.is_file():
                channel = int(match.group(1))
                if channel not in newest or path.stat().st_mtime > newest[channel].stat().st_mtime:
                    newest[channel] = path
        return [newest[c] for c in sorted(newest)]

    def save_inputs(self, files: list[str | os.PathLike]) -> list[Path]:
        """Keep a copy of the case's images (channel order) in the review folder; each file appears whole."""
        self.inputs.mkdir(parents=True, exist_ok=True)
        saved = []
        for channel, source in enumerate(files):
            source = Path(source)
            ending = next((e for e in _SINGLE_FILE_FORMATS if source.name.lower().endswith(e)), None)
            target = self.inputs / f"input_{channel:04d}{ending or '.nii.gz'}"
            if ending:
                atomic_write_file(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
            else:  # e.g. .mhd with its raw file beside it
                import SimpleITK as sitk

                atomic_write_image(target, sitk.ReadImage(str(source)), image_io="NiftiImageIO")
            saved.append(target)
        return saved
