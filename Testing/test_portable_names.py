"""Volume names become one valid folder on Windows and POSIX (storage/portable_names.py), and the desktop's
default review folder is one such folder below ~/IWUOSegmentation (mrml.review_controller.default_review_folder).

The validity check below is written from Microsoft's "Naming Files, Paths, and Namespaces" independently of the
code under test; each name is also created on this (POSIX) machine and must be one directory, not nested.
"""

from __future__ import annotations

import pytest

from IWUOSegmentationLib.storage.portable_names import FALLBACK_NAME, MAX_FOLDER_NAME, portable_folder_name

#: Names Windows reserves for devices, with or without an extension (docs: "Naming Files, Paths, and Namespaces").
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³"}


def windows_and_posix_problems(name: str) -> list[str]:
    """What makes `name` unusable as one folder name on Windows or POSIX (empty list: usable everywhere)."""
    problems = []
    if not name or name in (".", ".."):
        problems.append("empty, '.' or '..'")
    problems += [f"reserved character {c!r}" for c in '<>:"/\\|?*' if c in name]
    problems += [f"control character {ord(c)}" for c in name if ord(c) < 32]
    if name.endswith((" ", ".")):
        problems.append("ends with a space or a period")
    if name.split(".")[0].rstrip(" ").upper() in WINDOWS_DEVICES:
        problems.append("a device name")
    if len(name) > 255 or len(name.encode("utf-8")) > 255:
        problems.append("longer than 255")
    return problems


DICOM_NAMES = ["3: AX FLAIR/POST", "7: T1 MPRAGE", "12: DWI/ADC map", "4: COR T2 FSE", "1: CON", "2: ..."]
ODD_NAMES = [f"series{c}name" for c in '<>:"/\\|?*'] + [
    "", " ", "...", ".", "..", "CON", "con.txt", "NUL ", "LPT9.nii", "COM¹", "tab\there", "a\x00b", "trailing. .",
    "  padded  ", "x" * 300, "é" * 300, "\U0001f9e0" * 100, "\ud800 lone surrogate", "normal_FLAIR"]


@pytest.mark.parametrize("volume_name", DICOM_NAMES + ODD_NAMES)
def test_every_volume_name_becomes_one_valid_folder(volume_name, tmp_path):
    name = portable_folder_name(volume_name)
    assert not windows_and_posix_problems(name), (volume_name, name, windows_and_posix_problems(name))
    assert len(name) <= MAX_FOLDER_NAME
    (tmp_path / name).mkdir()
    assert [p.name for p in tmp_path.iterdir()] == [name] and not any((tmp_path / name).iterdir()), \
        "the folder must be one directory, not a nested path"


def test_readable_names_stay_readable():
    assert portable_folder_name("3: AX FLAIR/POST") == "3_ AX FLAIR_POST"
    assert portable_folder_name("normal_FLAIR") == "normal_FLAIR"
    assert portable_folder_name("CON") == "CON_" and portable_folder_name("con.txt") == "con_.txt"
    assert portable_folder_name("") == portable_folder_name("...") == FALLBACK_NAME


def test_the_validity_check_sees_what_windows_refuses():
    """The oracle itself: the names the DICOM plugin makes, and device names, are refused by it."""
    assert windows_and_posix_problems("3: AX FLAIR/POST") == ["reserved character ':'", "reserved character '/'"]
    assert windows_and_posix_problems("nul.tar.gz") == ["a device name"]
    assert windows_and_posix_problems("name.") == ["ends with a space or a period"]


def test_default_review_folder_is_one_folder_below_the_iwuo_folder(tmp_path, monkeypatch):
    from pathlib import Path

    from IWUOSegmentationLib.mrml.review_controller import default_review_folder, review_folder_of

    monkeypatch.setenv("HOME", str(tmp_path))
    for volume_name in DICOM_NAMES:
        folder = default_review_folder(volume_name)
        assert folder.parent == tmp_path / "IWUOSegmentation" and not windows_and_posix_problems(folder.name)
        chosen, analysed = review_folder_of("", volume_name)
        assert Path(chosen) == folder and not analysed
        folder.mkdir(parents=True)
    assert len(list((tmp_path / "IWUOSegmentation").iterdir())) == len(DICOM_NAMES)
