"""Errors a user can act on, each with the exit code the command line returns for it."""

from __future__ import annotations


class IWUOError(Exception):
    """Base class: the message is written for the person running the tool."""

    exit_code = 1


class BadInputError(IWUOError):
    """The images, labels or options given cannot be used as they are."""

    exit_code = 2


class BadCalibrationError(BadInputError):
    """A calibration file that is damaged, fitted for another model, or fitted on no data."""


class MissingInputError(BadInputError):
    """A file or folder the user named (an image, a case or model folder, a log) does not exist."""


class BadModelError(IWUOError):
    """The model folder or zip is incomplete, inconsistent or untrusted."""

    exit_code = 3


class UntrustedModelError(BadModelError):
    """A checkpoint holds pickled objects that could run code when loaded."""


class CancelledError(IWUOError):
    """The user asked to stop; nothing partial was written."""

    exit_code = 4


class OutOfMemoryError(IWUOError):
    """The device ran out of memory; the message says how to run anyway."""

    exit_code = 6


class CorruptLogError(IWUOError):
    """A budget log cannot be read back."""

    exit_code = 5


class ReviewNotResumableError(BadInputError):
    """The scene holds no review session that can be taken up as it is (no ranking table, or one whose volume and
    segmentation are gone)."""


class MissingBudgetLogError(ReviewNotResumableError):
    """The budget log a review session was saved with is not where the scene says."""
