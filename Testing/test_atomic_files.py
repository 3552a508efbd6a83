"""The one atomic writer (storage/atomic_files.py): the file is fsynced before it is renamed over its target, and
the folder after the rename (POSIX), for text, bytes, images, the corrected label map and a folder swapped in;
an analysis written over an older one that fails midway leaves the older one whole.

`os.fsync` and `os.replace` are wrapped to record, in order, which file each fsync got (by inode: the temporary
file keeps its inode when renamed, so the fsynced inode must be the final file's) and which rename happened.
Without the fsync of the file, or with it after the rename, these tests fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from IWUOSegmentationLib.storage import atomic_files
from IWUOSegmentationLib.storage.atomic_files import (
    atomic_write_bytes,
    atomic_write_image,
    atomic_write_text,
    folder_swapped_in,
)

POSIX = os.name != "nt"


@pytest.fixture
def calls(monkeypatch) -> list[tuple]:
    """("fsync", inode) and ("replace", source, target) in the order they happen."""
    recorded: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        recorded.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(source, target, *args, **kwargs) -> None:
        recorded.append(("replace", Path(source), Path(target)))
        real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return recorded


def assert_durable(calls: list[tuple], path: Path) -> None:
    """The file at `path` was fsynced (same inode) before the rename that put it there, then its folder."""
    renames = [i for i, c in enumerate(calls) if c[0] == "replace" and c[2] == path]
    assert len(renames) == 1, f"{path.name} was not renamed into place exactly once: {calls}"
    source = calls[renames[0]][1]
    assert source.parent == path.parent and source.name.startswith("."), f"temporary file {source} not hidden beside it"
    file_syncs = [i for i, c in enumerate(calls) if c == ("fsync", path.stat().st_ino)]
    assert file_syncs and file_syncs[0] < renames[0], f"{path.name} was not fsynced before its rename: {calls}"
    if POSIX:
        folder_syncs = [i for i, c in enumerate(calls) if c == ("fsync", path.parent.stat().st_ino)]
        assert folder_syncs and folder_syncs[-1] > renames[0], f"the folder of {path.name} was not fsynced: {calls}"


def test_text_is_fsynced_before_its_rename(tmp_path, calls):
    path = tmp_path / "summary.json"
    atomic_write_text(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    assert_durable(calls, path)


def test_bytes_are_fsynced_before_their_rename(tmp_path, calls):
    path = tmp_path / "inputs" / "input_0000.nii"
    atomic_write_bytes(path, b"\x00\x01" * 1000)
    assert path.read_bytes() == b"\x00\x01" * 1000
    assert_durable(calls, path)


def test_an_image_is_fsynced_before_its_rename_and_keeps_its_format(tmp_path, calls):
    image = sitk.GetImageFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    image.SetSpacing((1.0, 2.0, 3.0))
    for name in ("map.nii.gz", "map.nrrd"):
        path = tmp_path / name
        atomic_write_image(path, image)
        back = sitk.ReadImage(str(path))
        assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
        assert back.GetSpacing() == (1.0, 2.0, 3.0)
        assert_durable(calls, path)
    assert (tmp_path / "map.nrrd").read_bytes().startswith(b"NRRD")  # the temporary file had the right extension


def test_the_corrected_label_map_is_fsynced_before_its_rename(tmp_path, calls):
    from IWUOSegmentationLib.mrml.review_workflow import save_corrected_segmentation

    geometry = sitk.Image(5, 4, 3, sitk.sitkUInt8)
    label_map = np.zeros((3, 4, 5), np.uint8)
    label_map[1, 1:3, 1:4] = 2
    path = save_corrected_segmentation(label_map, geometry, tmp_path / "corrected_segmentation.nii.gz")
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), label_map)
    assert_durable(calls, path)


def test_a_folder_swapped_in_replaces_the_old_one_whole_and_is_made_durable(tmp_path, calls):
    target = tmp_path / "analysis"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with folder_swapped_in(target) as built:
        atomic_write_text(built / "summary.json", "new")
        assert (target / "old.txt").is_file()  # the old folder stays whole until the new one is complete
    assert sorted(p.name for p in target.iterdir()) == ["summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis"]  # nothing left aside
    swap = [i for i, c in enumerate(calls) if c[0] == "replace" and c[2] == target]
    assert len(swap) == 1
    if POSIX:
        assert any(c == ("fsync", tmp_path.stat().st_ino) for c in calls[swap[0]:]), calls


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "review_report.md"
    atomic_write_text(path, "old report\n")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_files.atomic_write_file(path, fail)
    assert path.read_text() == "old report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review_report.md"]
    with pytest.raises(ValueError):
        with folder_swapped_in(tmp_path / "dataset"):
            raise ValueError("a case cannot be exported")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review_report.md"]


def test_a_file_where_the_folder_should_be_is_one_clear_error(tmp_path):
    from IWUOSegmentationLib.errors import BadInputError

    (tmp_path / "out").write_text("a file, not a folder")
    with pytest.raises(BadInputError, match="Cannot create the folder"):
        atomic_write_text(tmp_path / "out" / "report.md", "x")


def test_an_analysis_that_fails_midway_leaves_the_old_analysis_whole(tmp_path, phantom_cases, monkeypatch):
    """An analysis written over an older one is built aside and swapped in (data/analysis_files.write_analysis): a
    write that fails after some of the new maps leaves the old folder file for file as it was, and nothing aside."""
    from synthetic_review import write_synthetic_analysis

    from IWUOSegmentationLib.data import analysis_files

    new_case, old_case = sorted(p for p in phantom_cases.iterdir() if p.is_dir())[:2]
    out = write_synthetic_analysis(old_case, tmp_path / "analysis")  # another phantom: every map differs
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    written = []

    def fail_at_the_third_map(path, image, **kwargs):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(path)
        return atomic_write_image(path, image, **kwargs)

    monkeypatch.setattr(analysis_files, "atomic_write_image", fail_at_the_third_map)
    with pytest.raises(OSError, match="No space"):
        write_synthetic_analysis(new_case, out)
    assert len(written) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis"]
