"""Atomic file writes: a crash or cancel never leaves a half-written file behind.

The one place a file is written to a temporary name and renamed over its target (Testing/test_one_way.py
checks that no other module renames a temporary file): the temporary file sits in the target's folder
(a rename never crosses file systems) with the target's extension (SimpleITK and matplotlib choose the
format by it), is fsynced before the rename, and the folder is fsynced after it where the OS allows
(POSIX; Windows cannot open a folder for fsync), so after a power cut the file is the old one or the new one.

Each write takes the names of its fault points (storage/fault_injection.py): `tmp_point` around the
temporary file, `done_point` around the rename; None for a write the crash tests do not target.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

from ..errors import BadInputError
from .fault_injection import after_write, before_write

#: File endings made of two suffixes, kept whole on the temporary file.
_DOUBLE_ENDINGS = (".nii.gz", ".seg.nrrd", ".tar.gz")


class IncompleteFileError(BadInputError, ValueError):
    """A compressed file is cut short or corrupt (a ValueError too, for callers that catch one)."""


def _ending(path: Path) -> str:
    return next((e for e in _DOUBLE_ENDINGS if path.name.lower().endswith(e)), path.suffix)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename inside `folder` durable (POSIX); nothing on Windows, where folders cannot be fsynced."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folder(path: str | os.PathLike) -> Path:
    """Create the folder `path` and its parents for output; a path that cannot be a folder (a file stands in the
    way) is bad input, named in one line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, FileNotFoundError) as exc:
        raise BadInputError(f"Cannot create the folder {path}: {exc.strerror} ({exc.filename}).") from exc
    return path


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:  # Windows' fsync needs a handle open for writing
        os.fsync(handle.fileno())


def atomic_write_file(path: str | os.PathLike, write: Callable[[Path], None], tmp_point: Optional[str] = None,
                      done_point: Optional[str] = None) -> Path:
    """Let `write(tmp)` make the file at a temporary path beside `path` (same extension), fsync it, rename it
    over `path`, fsync the folder. On any error the temporary file is removed and `path` is left as it was."""
    path = Path(path)
    make_folder(path.parent)
    ending = _ending(path)
    # hidden, unique (two writers never share one), made by `write` itself with the folder's usual permissions
    tmp = path.with_name(f".{path.name[:len(path.name) - len(ending)]}.{os.getpid()}-{secrets.token_hex(4)}"
                         f".partial{ending}")
    try:
        if tmp_point:
            before_write(tmp_point, path)
        write(tmp)
        _fsync_file(tmp)
        if tmp_point:
            after_write(tmp_point, tmp)
        if done_point:
            before_write(done_point, path)
        os.replace(tmp, path)
    except BaseException:  # a failed write (disk full, read-only folder) leaves the target as it was
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    if done_point:
        after_write(done_point)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, tmp_point: Optional[str] = "atomic.tmp",
                      done_point: Optional[str] = "atomic.replaced") -> Path:
    """Write `text` (UTF-8) to `path` atomically: summary.json, evaluation results, reports."""
    return atomic_write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), tmp_point, done_point)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, tmp_point: Optional[str] = None,
                       done_point: Optional[str] = None) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write_file(path, lambda tmp: tmp.write_bytes(data), tmp_point, done_point)


def atomic_write_image(path: str | os.PathLike, image, compress: bool = True, image_io: str = "",
                       tmp_point: Optional[str] = None, done_point: Optional[str] = None) -> Path:
    """Write a SimpleITK image to `path` atomically, in the format its extension names (or `image_io`)."""
    import SimpleITK as sitk

    return atomic_write_file(path, lambda tmp: sitk.WriteImage(image, str(tmp), compress, imageIO=image_io),
                             tmp_point, done_point)


@contextmanager
def folder_swapped_in(target: str | os.PathLike, swap_point: Optional[str] = None) -> Iterator[Path]:
    """Build a whole folder aside, then swap it in: yields an empty folder named like `target` inside the hidden
    `.<name>.partial` beside it; when the block ends, an existing `target` is moved aside in one rename (never
    half-deleted in place), the new folder renamed in, and the old one removed. A crash leaves the old folder or
    the new one, never a mix; what an earlier crash left aside is removed first. On an error nothing changes."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial")
    old = target.with_name(f".{target.name}.old")
    for leftover in (staging, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    built = make_folder(staging / target.name)
    try:
        yield built
        if target.exists():
            os.replace(target, old)
        if swap_point:
            after_write(swap_point)
        try:
            os.replace(built, target)
        except BaseException:
            if old.exists() and not target.exists():
                os.replace(old, target)  # the old folder back in place
            raise
        fsync_folder(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_complete(path: str | os.PathLike) -> None:
    """Raise IncompleteFileError if a gzip-compressed file (.nii.gz, .gz) is cut short or corrupt.

    ITK reads a truncated .nii.gz without complaint, filling the missing voxels with zeros; the gzip
    stream's end marker and CRC say whether the file is whole (about 10 ms per MB).
    """
    import gzip
    import zlib

    path = Path(path)
    if not path.name.endswith(".gz"):
        return
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise IncompleteFileError(f"{path.name} is incomplete or corrupt ({exc})") from exc
