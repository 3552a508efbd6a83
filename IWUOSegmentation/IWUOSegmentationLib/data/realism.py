"""Descriptors that compare phantoms with real BraTS cases on the same footing.

Tumour volume (ml), oedema:core volume ratio, number of connected tumour components, and the
contrast of each compartment against normal-appearing brain (non-tumour brain more than 10 mm
from the tumour), in units of that tissue's standard deviation, per channel. No white-matter
segmentation exists for the real cases, so normal-appearing brain stands in for white matter.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def describe_case(flair: np.ndarray, t1c: np.ndarray, label: np.ndarray, brain: np.ndarray,
                  spacing_xyz: tuple[float, float, float]) -> dict[str, float]:
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    tumour = label > 0
    core = np.isin(label, (1, 3, 4))
    edema = label == 2
    _, n_components = ndimage.label(tumour, structure=np.ones((3, 3, 3)))
    dist = ndimage.distance_transform_edt(~tumour, sampling=np.asarray(spacing_xyz)[::-1])
    normal = brain & ~tumour & (dist > 10.0)
    out = {"tumour_ml": tumour.sum() * voxel_ml, "edema_to_core": float(edema.sum() / max(core.sum(), 1)),
           "components": float(n_components)}
    for name, image in (("flair", flair), ("t1c", t1c)):
        ref, sd = np.median(image[normal]), image[normal].std() + 1e-6
        out[f"{name}_edema_contrast"] = float((image[edema].mean() - ref) / sd) if edema.any() else float("nan")
        enh = label == 4
        out[f"{name}_enhancing_contrast"] = float((image[enh].mean() - ref) / sd) if enh.any() else float("nan")
    return {k: round(float(v), 3) for k, v in out.items()}
