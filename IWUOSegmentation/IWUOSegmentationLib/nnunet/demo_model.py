"""Where the bundled demo model lives and how it was made (see scripts/make_demo_model.py).

The demo model is trained on synthetic phantoms only (never on patient data), is region-based
(sigmoid outputs for whole tumour, tumour core, enhancing tumour: the nested regions BraTS is
scored on, as in nnU-Net's own BraTS configurations) and ships two configurations: 3d_fullres
with folds 0 and 1, and 3d_fullres_dropout (fold 0) whose network has Dropout3d.
"""

from __future__ import annotations

from pathlib import Path

DEMO_DATASET = "Dataset900_IWUOPhantom"
DEMO_MODEL_ROOT = Path(__file__).resolve().parent / "demo_model" / DEMO_DATASET
DEMO_CONFIGURATION = "IWUOTrainer__nnUNetPlans__3d_fullres"
DEMO_DROPOUT_CONFIGURATION = "IWUOTrainer__nnUNetPlans__3d_fullres_dropout"

#: Phantom seeds at or above this value were used for training; tests use seeds below it.
FIRST_TRAINING_SEED = 1000

TRAINING = {
    "n_cases": 24, "first_seed": FIRST_TRAINING_SEED, "features": [8, 16, 32, 64],
    "patch_size": [48, 64, 64], "batch_size": 2, "epochs": 40, "dropout_epochs": 20, "iterations_per_epoch": 25,
}


def demo_model_folder(dropout: bool = False) -> Path:
    """The trained-model folder of the bundled demo model."""
    return DEMO_MODEL_ROOT / (DEMO_DROPOUT_CONFIGURATION if dropout else DEMO_CONFIGURATION)
