"""Reproduce the bundled demo model: phantoms only, trained with `iwuo train` on CPU.

    python scripts/make_demo_model.py [--work /tmp/iwuo_demo_model]

Trains configuration 3d_fullres (folds 0 and 1) and 3d_fullres_dropout (fold 0; the same
small network with Dropout3d p=0.1 and fewer epochs, so MC-dropout members exist) on 24 phantoms with seeds
1000-1023 (never used for testing), then exports slim checkpoints into the package.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from IWUOSegmentationLib.data.phantom import write_phantoms
from IWUOSegmentationLib.nnunet.demo_model import DEMO_MODEL_ROOT, TRAINING
from IWUOSegmentationLib.nnunet.training import SmallNet, export_model, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="/tmp/iwuo_demo_model")
    args = parser.parse_args()
    work = Path(args.work)
    start = time.time()
    raw = write_phantoms(work / "raw", TRAINING["n_cases"], seed=TRAINING["first_seed"], region_based=True)
    report = {}
    for configuration, dropout, folds in (("3d_fullres", 0.0, [0, 1]), ("3d_fullres_dropout", 0.1, [0])):
        net = SmallNet(features=tuple(TRAINING["features"]), patch_size=tuple(TRAINING["patch_size"]),
                       batch_size=TRAINING["batch_size"], dropout=dropout)
        epochs = TRAINING["epochs"] if dropout == 0 else TRAINING["dropout_epochs"]
        result = train(raw, work / "nnunet", folds, epochs=epochs,
                       iterations_per_epoch=TRAINING["iterations_per_epoch"], net=net,
                       new_configuration=None if configuration == "3d_fullres" else configuration,
                       skip_preprocessing=configuration != "3d_fullres",
                       progress=lambda f, m: print(f"[{time.time() - start:7.0f}s] {m}", flush=True))
        dest = DEMO_MODEL_ROOT / Path(result.model_folder).name
        export_model(result.model_folder, dest, folds)
        report[configuration] = result.validation_dice
    report["minutes"] = round((time.time() - start) / 60, 1)
    print(json.dumps(report, indent=2))
    (DEMO_MODEL_ROOT / "training_report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
