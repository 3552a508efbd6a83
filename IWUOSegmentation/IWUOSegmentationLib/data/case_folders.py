"""Find a case's channel images and reference label in a folder, matching channels by name.

Works for phantom case folders (FLAIR.nii.gz, T1c.nii.gz, label.nii.gz), BraTS-2015 style
folders (Flair_subtrMeanDivStd.nii.gz, T1c_..., OTMultiClass.nii.gz), BraTS 2017-2021
(`_flair`, `_t1`, `_t1ce`, `_t2`, `_seg`), BraTS 2023-2024 (`-t2f`, `-t1n`, `-t1c`, `-t2w`, `-seg`)
and nnU-Net-style `case_0000.nii.gz` names (by index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import BadInputError, MissingInputError

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


#: MR sequence synonyms in file names (BraTS 2013-2024, nnU-Net datasets, scanner exports).
CHANNEL_SYNONYMS = (
    ("flair", "t2f", "t2-flair", "t2flair", "fla"),
    ("t1c", "t1ce", "t1gd", "t1-post", "t1post", "t1-gd", "t1-ce", "t1-c", "t1contrast"),
    ("t1", "t1n", "t1w", "t1-native"),
    ("t2", "t2w"),
)


def _tokens(name: str) -> list[str]:
    """Lower-case words of a file name without its extension: 'BraTS-GLI-00001-000-t2f' -> [..., 't2f']."""
    return [t for t in re.split(r"[^a-z0-9]+", name.lower().split(".")[0]) if t]


def _channel_synonyms(channel: str) -> list[tuple[str, ...]]:
    """Token sequences that name `channel` in a file name: its own name, plus its sequence's synonyms."""
    own = tuple(_tokens(channel))
    names = {own} if own else set()
    for group in CHANNEL_SYNONYMS:
        if _key(channel) in {_key(g) for g in group}:
            names |= {tuple(_tokens(g)) for g in group}
    return sorted(names, key=len, reverse=True)


def _named_channels(file: Path, channel_names: list[str]) -> set[str]:
    """Channels a file name names by whole words; a longer name wins over a shorter one it contains (T2-FLAIR is
    FLAIR, not T2; t1ce is T1c, never T1)."""
    tokens = _tokens(file.name)
    hits = []
    for channel in channel_names:
        for synonym in _channel_synonyms(channel):
            n = len(synonym)
            for start in range(len(tokens) - n + 1):
                if tuple(tokens[start:start + n]) == synonym:
                    hits.append((n, start, channel))
    claimed: set[int] = set()
    named = set()
    for n, start, channel in sorted(hits, reverse=True):
        span = set(range(start, start + n))
        if not span & claimed:
            claimed |= span
            named.add(channel)
    return named


def match_channels(files: list[Path], channel_names: list[str]) -> list[Path]:
    """One file per channel: by channel name or a synonym as words of the file name (t2f is FLAIR, t1ce is T1c,
    t1n is T1), else by nnU-Net's _000i index, else by the channel name inside the file name. Two candidates
    for one channel are an error that names both."""
    chosen: dict[str, Path] = {}
    named = {f: _named_channels(f, channel_names) for f in files}
    for channel in channel_names:
        hits = [f for f in files if channel in named[f]]
        if len(hits) > 1:
            raise BadInputError(f"Channel {channel} is ambiguous: {', '.join(f.name for f in hits)} all name it; "
                                "keep one in the folder or pass the images in channel order.")
        if hits:
            chosen[channel] = hits[0]
    used = set(chosen.values())
    for i, channel in enumerate(channel_names):
        if channel not in chosen:
            hits = [f for f in files if f not in used and re.search(rf"_{i:04d}\.", f.name)]
            if len(hits) == 1:
                chosen[channel] = hits[0]
                used.add(hits[0])
    for channel in sorted((c for c in channel_names if c not in chosen), key=len, reverse=True):
        key = _key(channel)
        hits = [f for f in files if f not in used and key and key in _key(f.name.split(".")[0])]
        if len(hits) > 1:
            raise BadInputError(f"Channel {channel} is ambiguous: {', '.join(f.name for f in hits)} all contain "
                                "its name; keep one in the folder or pass the images in channel order.")
        if hits:
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
        raise MissingInputError(f"Cases folder {root} does not exist.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _images_in(p))
    if not folders:
        raise BadInputError(f"{root} has no case folders with images.")
    return folders
