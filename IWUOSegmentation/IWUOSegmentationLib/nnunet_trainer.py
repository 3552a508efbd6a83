"""nnU-Net's base trainer with epochs as a parameter, and the child-process entry point that runs it.

Why a subclass: nnU-Net fixes 1000 epochs x 250 iterations in `nnUNetTrainer.__init__`; its
variants with other counts are separate classes found by a lookup that imports every trainer
module (some of which need a matching torchvision). `IWUOTrainer` builds exactly the base
architecture and records `nnUNetTrainer` as the trainer name in its checkpoints, so the result
is an ordinary nnU-Net model folder that stock `nnUNetv2_predict` can run.

Run as `python -m IWUOSegmentationLib.nnunet_trainer --dataset ... --fold ...` with the
nnUNet_* environment variables set (see training.nnunet_env).
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class IWUOTrainer(nnUNetTrainer):
    """nnUNetTrainer with settable epoch and iteration counts; checkpoints name the base trainer."""

    def set_schedule(self, num_epochs: int, iterations_per_epoch: int) -> None:
        """Set the counts after construction: nnU-Net records __init__'s own arguments only."""
        self.num_epochs = num_epochs
        self.num_iterations_per_epoch = iterations_per_epoch
        self.num_val_iterations_per_epoch = max(1, iterations_per_epoch // 5)
        self.save_every = max(1, min(self.save_every, num_epochs // 4 or 1))

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            return super().save_checkpoint(filename)
        name = type(self).__name__
        type(self).__name__ = "nnUNetTrainer"
        try:
            super().save_checkpoint(filename)
        finally:
            type(self).__name__ = name


def main(argv: list[str] | None = None) -> None:
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.run.run_training import maybe_load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pretrained-weights", default=None)
    parser.add_argument("--continue", dest="continue_training", action="store_true")
    args = parser.parse_args(argv)

    base = os.path.join(nnUNet_preprocessed, args.dataset)
    with open(os.path.join(base, "nnUNetPlans.json")) as f:
        plans = json.load(f)
    with open(os.path.join(base, "dataset.json")) as f:
        dataset_json = json.load(f)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    plans["continue_training"] = args.continue_training
    trainer = IWUOTrainer(plans, args.configuration, args.fold, dataset_json, device)
    trainer.set_schedule(args.epochs, args.iterations)
    maybe_load_checkpoint(trainer, args.continue_training, False, args.pretrained_weights)
    trainer.run_training()
    trainer.perform_actual_validation(False)


if __name__ == "__main__":
    main()
