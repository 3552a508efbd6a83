"""Synthetic glioma phantoms on a real healthy-brain substrate.

Why: the product must work out of the box without real patient data (BraTS is non-commercial
and nothing may be downloaded). A Fisher-Kolmogorov tumour grown on the MNI152 2009a grey/white
matter maps that ship inside nilearn's wheel gives shapes that follow white-matter tracts and
stop at CSF, which simple ellipsoids do not.

Arrays are (z, y, x) as SimpleITK returns them; spacing/origin/direction are in SimpleITK's
(x, y, z) order.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import BadInputError
from ..storage.atomic_files import atomic_write_image, atomic_write_text, make_folder
from .case_images import image_from_array
from .structures import BRATS_CONVENTIONS, convert_labels, resolve_convention

#: BraTS 2013-2015 label convention.
LABELS = {"background": 0, "necrosis": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4}
CHANNELS = ("FLAIR", "T1c")

# Relative tissue intensities (white matter = 1) for the two rendered sequences.
# FLAIR: oedema and non-enhancing tumour bright, CSF dark. T1c: enhancing rim bright, necrosis dark.
_INTENSITY = {
    #            wm    gm    csf   necro  edema  nonenh enh
    "FLAIR": (1.00, 1.20, 0.25, 1.45, 1.52, 1.55, 1.60),
    "T1c": (1.00, 0.80, 0.30, 0.35, 0.78, 0.85, 1.50),
}


@dataclass
class PhantomCase:
    """One rendered phantom: two channels, a label map and the geometry they share."""

    name: str
    channels: dict[str, np.ndarray]
    label: np.ndarray
    brain_mask: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    params: dict = field(default_factory=dict)

    def to_image(self, array: np.ndarray) -> sitk.Image:
        return image_from_array(array, self.spacing, self.origin, self.direction)


def substrate_files() -> dict[str, Path]:
    """The MNI152 2009a T1/GM/WM maps inside nilearn's installed wheel (no download)."""
    import nilearn

    data = Path(nilearn.__file__).parent / "datasets" / "data"
    files = {k: data / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise BadInputError(f"The brain template that ships with nilearn is missing: {missing}")
    return files


@lru_cache(maxsize=4)
def load_substrate(spacing: tuple[float, float, float]) -> dict:
    """GM/WM/CSF fractions and brain mask resampled to `spacing`, cropped to the brain."""
    files = substrate_files()
    images = {k: sitk.Cast(sitk.ReadImage(str(p)), sitk.sitkFloat32) for k, p in files.items()}
    ref = images["t1"]
    size = [int(round(sz * sp / ns)) for sz, sp, ns in zip(ref.GetSize(), ref.GetSpacing(), spacing)]
    out = {}
    for key, image in images.items():
        res = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, ref.GetOrigin(), spacing,
                            ref.GetDirection(), 0.0, sitk.sitkFloat32)
        out[key] = sitk.GetArrayFromImage(res) / 255.0
        origin = res.GetOrigin()
    mask = out["t1"] > 0.08
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(mask, iterations=1))
    zz, yy, xx = np.nonzero(mask)
    lo = np.maximum([zz.min() - 2, yy.min() - 2, xx.min() - 2], 0)
    hi = np.minimum([zz.max() + 3, yy.max() + 3, xx.max() + 3], mask.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    gm = np.clip(out["gm"][crop], 0, 1)
    wm = np.clip(out["wm"][crop], 0, 1)
    brain = mask[crop]
    total = np.maximum(gm + wm, 1.0)
    gm, wm = gm / total * brain, wm / total * brain
    csf = np.clip(1.0 - gm - wm, 0, 1) * brain
    direction = np.array(ref.GetDirection()).reshape(3, 3)
    shift = direction @ (np.array([lo[2], lo[1], lo[0]]) * np.array(spacing))
    return {"gm": gm.astype(np.float32), "wm": wm.astype(np.float32), "csf": csf.astype(np.float32),
            "mask": brain, "origin": tuple(float(o) for o in np.array(origin) + shift),
            "direction": tuple(float(d) for d in ref.GetDirection())}


def grow_tumour(diffusivity: np.ndarray, seeds: list[tuple[int, int, int]], spacing_zyx: np.ndarray,
                rho: float, target_voxels: int, max_days: float = 2000.0) -> np.ndarray:
    """Fisher-Kolmogorov growth du/dt = div(D grad u) + rho u (1 - u), explicit in time.

    Flux crosses a face only where both voxels have D > 0 (no growth into CSF or outside the
    brain). Stops once `target_voxels` voxels exceed density 0.2 or at `max_days`.
    """
    u = np.zeros(diffusivity.shape, np.float32)
    for s in seeds:
        u[s] = 1.0
    dmax = float(diffusivity.max())
    if dmax <= 0:
        raise BadInputError("The diffusivity map is empty: the seed lies outside brain tissue.")
    dt = 0.9 / (2.0 * dmax * float(np.sum(1.0 / spacing_zyx**2)))
    faces = []
    for axis in range(3):
        sl_a = [slice(None)] * 3
        sl_b = [slice(None)] * 3
        sl_a[axis], sl_b[axis] = slice(0, -1), slice(1, None)
        a, b = tuple(sl_a), tuple(sl_b)
        d_face = np.where((diffusivity[a] > 0) & (diffusivity[b] > 0),
                          2 * diffusivity[a] * diffusivity[b] / (diffusivity[a] + diffusivity[b] + 1e-12), 0.0)
        faces.append((a, b, (d_face / spacing_zyx[axis] ** 2).astype(np.float32)))
    t = 0.0
    step = 0
    while t < max_days:
        flux_sum = np.zeros_like(u)
        for a, b, coeff in faces:
            flux = coeff * (u[b] - u[a])
            flux_sum[a] += flux
            flux_sum[b] -= flux
        u += dt * (flux_sum + rho * u * (1.0 - u))
        np.clip(u, 0.0, 1.0, out=u)
        t += dt
        step += 1
        if step % 10 == 0 and int((u > 0.2).sum()) >= target_voxels:
            break
    return u


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float) -> np.ndarray:
    field_ = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox)
    return field_ / (field_.std() + 1e-8)


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    poly = sum(rng.normal(0, 1) * g for g in grids) + sum(rng.normal(0, 0.5) * g * g for g in grids)
    return np.exp(strength * poly / (np.abs(poly).max() + 1e-8)).astype(np.float32)


def make_phantom(seed: int, spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
                 noise: float = 0.08, bias: float = 0.15, blur_mm: float = 1.0, texture: float = 0.12,
                 mass_effect: bool = False, name: str | None = None) -> PhantomCase:
    """Render one deterministic phantom case for `seed` on a grid of `spacing` mm (x, y, z)."""
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise BadInputError(f"Spacing must be three positive numbers in mm, got {spacing}.")
    rng = np.random.default_rng(seed)
    # Grow on a grid no finer than 2 mm in-plane (fast), then resample the density.
    sim_spacing = tuple(max(s, 2.0) for s in spacing)
    sim = load_substrate(sim_spacing)
    sub = load_substrate(spacing)
    sp_zyx = np.array(sim_spacing[::-1])

    d_white = rng.uniform(0.08, 0.25)  # mm^2/day
    rho = rng.uniform(0.012, 0.03)  # 1/day
    diffusivity = (d_white * sim["wm"] + 0.1 * d_white * sim["gm"]) * (sim["csf"] < 0.5)
    dist_mm = ndimage.distance_transform_edt(sim["mask"], sampling=sp_zyx)
    candidates = np.argwhere((sim["wm"] > 0.7) & (dist_mm > 18.0))
    n_foci = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    first = candidates[rng.integers(len(candidates))]
    seeds = [tuple(first)]
    near = candidates[np.linalg.norm((candidates - first) * sp_zyx, axis=1) < 40.0]
    for _ in range(n_foci - 1):
        seeds.append(tuple(near[rng.integers(len(near))]))
    target_ml = rng.uniform(40.0, 160.0)
    target_voxels = int(target_ml * 1000.0 / np.prod(sim_spacing))
    u = grow_tumour(diffusivity, seeds, sp_zyx, rho, target_voxels)
    # Satellite lesions a few centimetres away (separate components, as in many real gliomas).
    n_satellites = int(rng.choice([0, 0, 1, 2, 3]))
    visible = ndimage.binary_dilation(u > 0.2, iterations=3)
    far = candidates[(np.linalg.norm((candidates - first) * sp_zyx, axis=1) < 60.0)
                     & ~visible[tuple(candidates.T)]]
    for _ in range(n_satellites if len(far) else 0):
        satellite = far[rng.integers(len(far))]
        small = int(rng.uniform(0.5, 4.0) * 1000.0 / np.prod(sim_spacing))
        u = np.maximum(u, grow_tumour(diffusivity, [tuple(satellite)], sp_zyx, rho, small))
    # Irregular margins: perturb the density with smooth noise before thresholding.
    u = u * (1.0 + 0.25 * _smooth_noise(rng, u.shape, 2.0))
    if sim_spacing != spacing:
        u = _resample_array(u, sim, sub, sim_spacing, spacing)

    label = np.zeros(u.shape, np.uint8)
    label[u > 0.2] = LABELS["edema"]
    core = u > rng.uniform(0.45, 0.65)
    label[core] = LABELS["enhancing"]
    core_values = u[core]
    if core_values.size:
        necrotic_fraction = rng.uniform(0.2, 0.6)
        label[core & (u >= np.quantile(core_values, 1.0 - necrotic_fraction))] = LABELS["necrosis"]
        nonenh = core & (label == LABELS["enhancing"]) & (_smooth_noise(rng, u.shape, 3.0) > 1.0)
        label[nonenh] = LABELS["non_enhancing"]
    label[~sub["mask"]] = 0

    if mass_effect:
        sub = _apply_mass_effect(sub, u, spacing)

    channels = {}
    fractions = [sub["wm"], sub["gm"], sub["csf"]]
    tumour = [(label == k).astype(np.float32) for k in (1, 2, 3, 4)]
    in_tumour = label > 0
    blur_vox = [blur_mm / s for s in spacing[::-1]]
    for channel in CHANNELS:
        table = _INTENSITY[channel]
        healthy = sum(f * v for f, v in zip(fractions, table[:3]))
        lesion = sum(t * v for t, v in zip(tumour, table[3:]))
        image = np.where(in_tumour, lesion, healthy).astype(np.float32)
        # Tissue heterogeneity: finer texture in healthy tissue, coarser inside the lesion.
        image *= 1.0 + texture * np.where(in_tumour, _smooth_noise(rng, image.shape, 1.5),
                                          _smooth_noise(rng, image.shape, 0.8))
        image = ndimage.gaussian_filter(image, blur_vox)
        image *= _bias_field(rng, image.shape, bias)
        image = np.abs(image + rng.normal(0, noise, image.shape) + 1j * rng.normal(0, noise, image.shape))
        image = np.where(sub["mask"], image, 0.0).astype(np.float32)
        brain = image[sub["mask"]]
        channels[channel] = ((image - brain.mean()) / brain.std()).astype(np.float32)

    return PhantomCase(
        name=name or f"phantom_{seed:04d}", channels=channels, label=label, brain_mask=sub["mask"].copy(),
        spacing=spacing, origin=sub["origin"], direction=sub["direction"],
        params={"seed": seed, "d_white_mm2_per_day": round(float(d_white), 4), "rho_per_day": round(float(rho), 4),
                "foci": n_foci, "satellites": n_satellites, "target_ml": round(float(target_ml), 1), "spacing": list(spacing),
                "mass_effect": mass_effect})


def _resample_array(array: np.ndarray, src: dict, dst: dict, src_spacing, dst_spacing) -> np.ndarray:
    image = image_from_array(array.astype(np.float32), src_spacing, src["origin"], src["direction"])
    ref = image_from_array(np.zeros(dst["mask"].shape, np.float32), dst_spacing, dst["origin"], dst["direction"])
    return sitk.GetArrayFromImage(sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, 0.0))


def _apply_mass_effect(sub: dict, u: np.ndarray, spacing) -> dict:
    """Push healthy tissue away from the tumour: a radial displacement decaying with distance."""
    com = np.array(ndimage.center_of_mass(u > 0.2))
    grid = np.indices(u.shape).astype(np.float32)
    offset = grid - com[:, None, None, None]
    sp = np.array(spacing[::-1])[:, None, None, None]
    dist = np.sqrt(((offset * sp) ** 2).sum(0)) + 1e-3
    radius = (3.0 * (u > 0.2).sum() * np.prod(spacing) / (4 * np.pi)) ** (1 / 3)
    push_mm = 0.35 * radius * np.exp(-np.maximum(dist - radius, 0) / radius)
    coords = grid - offset / dist * push_mm / sp
    out = dict(sub)
    for key in ("wm", "gm", "csf"):
        out[key] = ndimage.map_coordinates(sub[key], coords, order=1).astype(np.float32)
    return out


def write_phantoms(out_dir: str | os.PathLike, n: int, seed: int = 0, layout: str = "nnunet",
                   spacing: tuple[float, float, float] = (2.0, 2.0, 2.0), dataset_name: str = "Dataset900_IWUOPhantom",
                   mass_effect: bool = False, region_based: bool = True, progress=None,
                   label_convention: str = "brats2013", kind: str = "tumour") -> Path:
    """Write `n` phantoms with seeds seed..seed+n-1.

    layout="nnunet": an nnU-Net raw dataset folder (imagesTr/, labelsTr/, dataset.json) named
    `dataset_name` inside `out_dir`. layout="cases": one folder per case with the channel images,
    the label and brainmask.nii.gz, named as that year's BraTS names them (2013: FLAIR.nii.gz,
    T1c.nii.gz, label.nii.gz; 2021: <case>_flair, _t1ce, _seg; 2023: <case>-t2f, -t1c, -seg).
    kind="tissue": brain tissue classes (1 csf, 2 grey_matter, 3 white_matter) on one T1 channel
    instead of tumours: a non-tumour, multi-structure segmentation task.
    """
    if n < 1:
        raise BadInputError("Number of phantoms must be at least 1.")
    if layout not in ("nnunet", "cases"):
        raise BadInputError(f"Unknown layout {layout!r}: use 'nnunet' or 'cases'.")
    if kind not in ("tumour", "tissue"):
        raise BadInputError(f"Unknown phantom kind {kind!r}: use 'tumour' or 'tissue'.")
    convention = resolve_convention(label_convention)
    out = Path(out_dir)
    root = make_folder(out / dataset_name if layout == "nnunet" else out)  # a file in the way is refused first
    for i in range(n):
        if kind == "tissue":
            case = make_tissue_phantom(seed + i, spacing=spacing)
        else:
            case = make_phantom(seed + i, spacing=spacing, mass_effect=mass_effect)
            case.label = convert_labels(case.label, "brats2013", convention)
        if progress:
            progress((i + 1) / n, f"phantom {case.name}")
        channels = list(case.channels)
        if layout == "nnunet":
            (root / "imagesTr").mkdir(parents=True, exist_ok=True)
            (root / "labelsTr").mkdir(parents=True, exist_ok=True)
            for c, channel in enumerate(channels):
                atomic_write_image(root / "imagesTr" / f"{case.name}_{c:04d}.nii.gz", case.to_image(case.channels[channel]))
            atomic_write_image(root / "labelsTr" / f"{case.name}.nii.gz", case.to_image(case.label))
        else:
            folder = root / case.name
            folder.mkdir(parents=True, exist_ok=True)
            names = _CASE_FILE_NAMES.get(convention if kind == "tumour" else "brats2013")
            for channel in channels:
                atomic_write_image(folder / names(case.name, channel), case.to_image(case.channels[channel]))
            atomic_write_image(folder / names(case.name, "label"), case.to_image(case.label))
            atomic_write_image(folder / "brainmask.nii.gz", case.to_image(case.brain_mask.astype(np.uint8)))
            atomic_write_text(folder / "phantom.json", json.dumps(case.params, indent=2))
    if layout == "nnunet":
        n_total = len(list((root / "labelsTr").glob("*.nii.gz")))
        ds = tissue_dataset_json(n_total) if kind == "tissue" else \
            phantom_dataset_json(n_total, region_based, convention)
        atomic_write_text(root / "dataset.json", json.dumps(ds, indent=2))
    return root


#: File names of a case folder per BraTS convention (channel or "label" -> file name).
_CASE_FILE_NAMES = {
    "brats2013": lambda case, what: f"{what}.nii.gz",
    "brats2021": lambda case, what: f"{case}_{ {'FLAIR': 'flair', 'T1c': 't1ce', 'label': 'seg'}[what]}.nii.gz",
    "brats2023": lambda case, what: f"{case}-{ {'FLAIR': 't2f', 'T1c': 't1c', 'label': 'seg'}[what]}.nii.gz",
}

#: Tissue phantoms: label values and T1-weighted intensities (white matter = 1).
TISSUE_LABELS = {"background": 0, "csf": 1, "grey_matter": 2, "white_matter": 3}
_TISSUE_T1 = {"csf": 0.3, "grey_matter": 0.65, "white_matter": 1.0}


def make_tissue_phantom(seed: int, spacing: tuple[float, float, float] = (2.0, 2.0, 2.0), noise: float = 0.05,
                        bias: float = 0.15, warp_mm: float = 4.0) -> PhantomCase:
    """A T1-weighted brain with CSF / grey / white matter labels, randomly warped per seed."""
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise BadInputError(f"Spacing must be three positive numbers in mm, got {spacing}.")
    rng = np.random.default_rng(seed)
    sub = load_substrate(spacing)
    shape = sub["mask"].shape
    sigma = 12.0 / min(spacing)
    grid = np.indices(shape).astype(np.float32)
    coords = [g + _smooth_noise(rng, shape, sigma) * warp_mm / s for g, s in zip(grid, spacing[::-1])]
    tissues = {k: ndimage.map_coordinates(sub[k], coords, order=1) for k in ("csf", "gm", "wm")}
    mask = ndimage.map_coordinates(sub["mask"].astype(np.float32), coords, order=1) > 0.5
    stack = np.stack([tissues["csf"], tissues["gm"], tissues["wm"]])
    label = np.where(mask, stack.argmax(0) + 1, 0).astype(np.uint8)
    image = sum(tissues[k] * _TISSUE_T1[n] for k, n in (("csf", "csf"), ("gm", "grey_matter"), ("wm", "white_matter")))
    image = image * (1.0 + 0.05 * _smooth_noise(rng, shape, 0.8))
    image = ndimage.gaussian_filter(image, [0.5 / s * 2 for s in spacing[::-1]]) * _bias_field(rng, shape, bias)
    image = np.abs(image + rng.normal(0, noise, shape) + 1j * rng.normal(0, noise, shape))
    image = np.where(mask, image, 0.0).astype(np.float32)
    brain = image[mask]
    return PhantomCase(name=f"tissue_{seed:04d}", channels={"T1": ((image - brain.mean()) / brain.std()).astype(np.float32)},
                       label=label, brain_mask=mask, spacing=spacing, origin=sub["origin"], direction=sub["direction"],
                       params={"seed": seed, "kind": "tissue", "spacing": list(spacing), "warp_mm": warp_mm})


def tissue_dataset_json(num_training: int) -> dict:
    return {"channel_names": {"0": "T1"}, "labels": dict(TISSUE_LABELS), "numTraining": num_training,
            "file_ending": ".nii.gz", "name": "IWUO brain tissue phantoms",
            "description": "CSF, grey and white matter of the MNI152 2009a template (nilearn), randomly warped."}


#: BraTS evaluation regions as nnU-Net region labels, and the label each region writes back.
REGIONS = {"background": 0, "whole_tumor": [1, 2, 3, 4], "tumor_core": [1, 3, 4], "enhancing_tumor": [4]}
REGIONS_CLASS_ORDER = [2, 1, 4]


def phantom_dataset_json(num_training: int, region_based: bool = True, label_convention: str = "brats2013") -> dict:
    """dataset.json of a phantom nnU-Net raw dataset, labels in the files as `label_convention` has them.

    region_based=True declares the nested BraTS regions (WT, TC, ET; sigmoid outputs), as
    nnU-Net's BraTS configurations do; False declares the convention's labels (softmax).
    """
    convention = BRATS_CONVENTIONS[resolve_convention(label_convention)]
    if region_based:
        wt, tc, et = (list(convention["regions"][r]) for r in ("WT", "TC", "ET"))
        labels = {"background": 0, "whole_tumor": wt, "tumor_core": tc, "enhancing_tumor": et}
        edema = [v for n, v in convention["labels"].items() if n in ("edema", "ED")][0]
        core = min(v for v in tc if v not in et)
        extra = {"regions_class_order": [edema, core, et[0]]}
    else:
        labels, extra = {"background": 0, **convention["labels"]}, {}
    return {
        "channel_names": {str(i): c for i, c in enumerate(CHANNELS)},
        "labels": labels,
        **extra,
        "numTraining": num_training,
        "file_ending": ".nii.gz",
        "name": "IWUO brain tumour phantoms",
        "description": "Synthetic Fisher-Kolmogorov gliomas on the MNI152 2009a template (nilearn)."
                       + ("" if convention is BRATS_CONVENTIONS["brats2013"] else f" Labels: {convention['title']}."),
    }

