"""Find a case's channel images and reference label in a folder, matching channels by name.

Works for phantom case folders (FLAIR.nii.gz, T1c.nii.gz, label.nii.gz), BraTS-2015 style
folders (Flair_subtrMeanDivStd.nii.gz, T1c_..., OTMultiClass.nii.gz) and nnU-Net-style
`case_0000.nii.gz` names (by index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import BadInputError

IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
REFERENCE_PATTERNS = ("label", "seg", "otmulticlass", "truth", "reference", "gt")
NOT_IMAGES = ("brainmask", "mask")


@dataclass
class CaseFiles:
    name: str
    images: list[Path]
    reference: Optional[Path]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_ENDINGS))


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_channels(files: list[Path], channel_names: list[str]) -> list[Path]:
    """One file per channel: by channel name in the file name (longest name first), else by _000i index."""
    chosen: dict[str, Path] = {}
    used: set[Path] = set()
    for channel in sorted(channel_names, key=len, reverse=True):
        key = _key(channel)
        hits = [f for f in files if f not in used and key and key in _key(f.name.split(".")[0])]
        if len(hits) == 1:
            chosen[channel] = hits[0]
            used.add(hits[0])
    for i, channel in enumerate(channel_names):
        if channel not in chosen:
            hits = [f for f in files if f not in used and re.search(rf"_{i:04d}\.", f.name)]
            if len(hits) == 1:
                chosen[channel] = hits[0]
                used.add(hits[0])
    missing = [c for c in channel_names if c not in chosen]
    if missing:
        raise BadInputError(f"No image found for channel(s) {', '.join(missing)} among "
                            f"{', '.join(f.name for f in files) or 'no files'}; name files after the channels "
                            f"({', '.join(channel_names)}) or pass them in order.")
    return [chosen[c] for c in channel_names]


def find_case_files(folder: str | Path, channel_names: list[str]) -> CaseFiles:
    folder = Path(folder)
    files = _images_in(folder)
    reference = [f for f in files if any(p in _key(f.name.split(".")[0]) for p in REFERENCE_PATTERNS)]
    candidates = [f for f in files if f not in reference and not any(p in _key(f.name) for p in NOT_IMAGES)]
    images = match_channels(candidates, channel_names)
    return CaseFiles(name=folder.name, images=images, reference=reference[0] if len(reference) == 1 else None)


def list_case_folders(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"Cases folder {root} does not exist.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _images_in(p))
    if not folders:
        raise BadInputError(f"{root} has no case folders with images.")
    return folders
