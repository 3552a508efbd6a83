"""The input images of one case and what an analysis of them returns, without torch.

Kept apart from `inference` (which needs torch and nnU-Net) so that everything that only reads
an analysis or images (the review, the self-test in stock Slicer, the identity check) imports
numpy and SimpleITK only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..errors import BadInputError, MissingInputError
from ..storage.atomic_files import check_complete

#: Voxel sizes outside this range (mm) are a broken header, not a scan.
MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 1e3


@dataclass
class CaseImages:
    """Input channels as (z, y, x) float32 arrays with SimpleITK geometry (x, y, z order)."""

    arrays: list[np.ndarray]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    names: list[str] = field(default_factory=list)

    @classmethod
    def from_files(cls, paths: list[str]) -> CaseImages:
        images = []
        for p in paths:
            if Path(p).is_dir():
                raise BadInputError(f"{p} is a folder; give one image file per model channel.")
            if not Path(p).is_file():
                raise MissingInputError(f"Input image not found: {p}")
            try:
                check_complete(p)  # ITK would zero-fill a cut .nii.gz
                images.append(sitk.ReadImage(str(p)))
            except (RuntimeError, ValueError) as exc:
                raise BadInputError(f"Cannot read image {p}: {str(exc).strip().splitlines()[-1]}") from exc
        return cls.from_sitk(images, [str(p) for p in paths])

    @classmethod
    def from_sitk(cls, images: list[sitk.Image], names: list[str] | None = None) -> CaseImages:
        if not images:
            raise BadInputError("No input images were given.")
        for name, image in zip(names or [f"image {i}" for i in range(len(images))], images):
            if image.GetDimension() != 3:
                raise BadInputError(f"{name} is {image.GetDimension()}-D; a 3-D volume is needed.")
            if image.GetNumberOfComponentsPerPixel() != 1:
                raise BadInputError(f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
                                    "give each channel as its own scalar image.")
        ref = images[0]
        case = cls(arrays=[sitk.GetArrayFromImage(im).astype(np.float32) for im in images],
                   spacing=ref.GetSpacing(), origin=ref.GetOrigin(), direction=ref.GetDirection(),
                   names=names or [])
        for name, image in zip(case.names or [f"image {i}" for i in range(len(images))], images[1:]):
            if not same_geometry(ref, image):
                raise BadInputError(
                    f"{name} does not share the geometry of the first image (size {image.GetSize()} vs "
                    f"{ref.GetSize()}, spacing {image.GetSpacing()} vs {ref.GetSpacing()}, origin "
                    f"{image.GetOrigin()} vs {ref.GetOrigin()}). Resample the channels onto one grid first.")
        return case

    def validate(self) -> None:
        for i, a in enumerate(self.arrays):
            name = self.names[i] if i < len(self.names) else f"channel {i}"
            if a.ndim != 3:
                raise BadInputError(f"{name} is {a.ndim}-D; a 3-D volume is needed.")
            if a.shape != self.arrays[0].shape:
                raise BadInputError(f"{name} has shape {a.shape}, the first channel {self.arrays[0].shape}.")
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            if bad:
                raise BadInputError(f"{name} has {bad} NaN or infinite voxels; fix or mask them before analysis.")
        if min(self.arrays[0].shape) < 2:
            raise BadInputError(f"The input is effectively 2-D (shape {self.arrays[0].shape}); a 3-D volume is needed.")
        spacing = np.asarray(self.spacing, float)
        if not (np.all(np.isfinite(spacing)) and np.all(spacing >= MIN_SPACING_MM) and np.all(spacing <= MAX_SPACING_MM)):
            raise BadInputError(f"The voxel spacing {tuple(self.spacing)} mm is not plausible (each must be between "
                                f"{MIN_SPACING_MM} and {MAX_SPACING_MM} mm); fix the image header.")

    def to_image(self, array: np.ndarray) -> sitk.Image:
        return image_from_array(array, self.spacing, self.origin, self.direction)


def image_from_array(array: np.ndarray, spacing=None, origin=None, direction=None, *,
                     like: sitk.Image | None = None) -> sitk.Image:
    """A (z, y, x) array as a SimpleITK image on the given grid (x, y, z order), or on the grid of the image
    `like` (which must have the array's size): the one place arrays get geometry."""
    image = sitk.GetImageFromArray(array)
    if like is not None:
        image.CopyInformation(like)  # refuses an image of another size
        return image
    image.SetSpacing(tuple(spacing))
    image.SetOrigin(tuple(origin))
    image.SetDirection(tuple(direction))
    return image


def same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-4)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4))


@dataclass
class AnalysisResult:
    """What one analysis returns, all in the input's (z, y, x) geometry."""

    label_map: np.ndarray
    probabilities: np.ndarray
    uncertainty: dict[str, np.ndarray]
    output_names: list[str]
    region_based: bool
    members: dict
    seconds: float
    calibration: Optional[dict] = None  # data/calibration.calibration_record of the calibration applied, if any
