"""The oldest 3D Slicer the module runs in.

Slicer 5.4 is the first with `slicer.i18n` and `slicer.parameterNodeWrapper`, which the module imports
(Slicer 5.2 has neither: the import would fail with a traceback instead of a sentence). The extension's
CMakeLists.txt asks for the same version (`find_package(Slicer 5.4 REQUIRED)`; a test keeps them equal).
"""

from __future__ import annotations

from ..errors import IWUOError

MINIMUM_SLICER_VERSION = (5, 4)


class UnsupportedSlicerError(IWUOError):
    """The running Slicer is older than MINIMUM_SLICER_VERSION."""


def check_slicer_version(major: int, minor: int) -> None:
    """Raise UnsupportedSlicerError, with one line for the user, when Slicer `major`.`minor` is too old."""
    if (int(major), int(minor)) < MINIMUM_SLICER_VERSION:
        needed = ".".join(map(str, MINIMUM_SLICER_VERSION))
        raise UnsupportedSlicerError(f"IWUOSegmentation needs 3D Slicer {needed} or later; this is Slicer {major}.{minor}. "
                                     f"Install a current Slicer from https://download.slicer.org.")
