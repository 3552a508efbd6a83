"""Shared fixtures: a headless Slicer MRML scene (slicer-core wheel), phantom cases, data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
os.environ.setdefault("nnUNet_def_n_proc", "2")


@pytest.fixture
def mrml_scene():
    """A real MRML scene with the colour, volumes and segmentations logics, as mrml/headless_scene.py builds it
    without slicer.app (docs/architecture.md, MRML layer)."""
    from IWUOSegmentationLib.mrml.headless_scene import create_headless_scene

    scene = create_headless_scene()
    yield scene
    scene.Clear(1)


@pytest.fixture(scope="session")
def phantom_cases(tmp_path_factory) -> Path:
    """Three phantom case folders (seeds 11-13, never used for training)."""
    from IWUOSegmentationLib.data.phantom import write_phantoms

    out = tmp_path_factory.mktemp("phantoms")
    write_phantoms(out, 3, seed=11, layout="cases")
    return out


@pytest.fixture(scope="session")
def demo_model():
    from IWUOSegmentationLib.nnunet.demo_model import demo_model_folder
    from IWUOSegmentationLib.nnunet.model_folder import open_model

    return open_model(demo_model_folder())


@pytest.fixture(scope="session")
def brats_cases() -> Path:
    path = SHARED_DATA / "brats2015"
    if not path.is_dir():
        pytest.skip(f"real BraTS cases not available at {path}")
    return path
