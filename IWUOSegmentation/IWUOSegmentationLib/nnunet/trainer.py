"""nnU-Net's base trainer with epochs as a parameter, and the child-process entry point that runs it.

Why a subclass: nnU-Net fixes 1000 epochs x 250 iterations in `nnUNetTrainer.__init__`; its
variants with other counts are separate classes found by a lookup that imports every trainer
module (some of which need a matching torchvision). `IWUOTrainer` builds exactly the base
architecture and records `nnUNetTrainer` as the trainer name in its checkpoints, so the result
is an ordinary nnU-Net model folder that stock `nnUNetv2_predict` can run.

Run as `python -m IWUOSegmentationLib.nnunet.trainer --dataset ... --fold ...` with the
nnUNet_* environment variables set (see training.nnunet_env).
"""

from __future__ import annotations

import argparse
import json
import os
import time

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

    def set_initial_lr(self, initial_lr: float) -> None:
        """A smaller start of nnU-Net's poly schedule, for short fine-tunes (nnU-Net's default is 1e-2)."""
        self.initial_lr = initial_lr

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            return super().save_checkpoint(filename)
        name = type(self).__name__
        type(self).__name__ = "nnUNetTrainer"
        try:
            super().save_checkpoint(filename)
        finally:
            type(self).__name__ = name


def load_pretrained_network_weights(trainer: nnUNetTrainer, checkpoint_path: str, trust_model: bool = False) -> str:
    """Start `trainer`'s network from a checkpoint; return what was transferred (for the training record).

    nnU-Net's own loader never transfers the output (seg_layers) convolutions, the practice for
    pretraining on other labels. Fine-tuning on corrections of the same model's own labels must
    keep them, or the first epochs relearn the outputs from scratch. So every weight is taken when
    all shapes match, the output layers are left new only when they differ (other labels), and
    anything else that differs is refused. The checkpoint is read without running pickled code.
    """
    from IWUOSegmentationLib.errors import BadModelError
    from IWUOSegmentationLib.nnunet.model_folder import load_checkpoint

    if not trainer.was_initialized:
        trainer.initialize()
    weights = load_checkpoint(checkpoint_path, trust_model=trust_model)["network_weights"]
    network = trainer.network.module if hasattr(trainer.network, "module") else trainer.network
    network = getattr(network, "_orig_mod", network)
    own = network.state_dict()
    differ = [k for k, v in own.items() if k not in weights or tuple(weights[k].shape) != tuple(v.shape)]
    body = [k for k in differ if ".seg_layers." not in k]
    if body:
        raise BadModelError(f"The pretrained weights {checkpoint_path} do not fit this network ({len(body)} tensors "
                            f"differ, e.g. {body[0]}): fine-tune in the pretrained model's plans.")
    network.load_state_dict({**own, **{k: weights[k] for k in own if k not in differ}})
    return "all layers" if not differ else "all but the output layers (the dataset has other labels)"


def write_training_record(trainer: nnUNetTrainer, record: dict) -> None:
    """fold_X/iwuo_training.json: what this run did (seconds, schedule, start weights, last pseudo Dice)."""
    per_output = trainer.logger.get_value("dice_per_class_or_region", step=None) or []
    record.update({"epochs": trainer.num_epochs, "iterations_per_epoch": trainer.num_iterations_per_epoch,
                   "initial_lr": trainer.initial_lr, "fold": trainer.fold,
                   "pseudo_dice_last_epoch": [round(float(v), 4) for v in per_output[-1]] if per_output else None})
    with open(os.path.join(trainer.output_folder, "iwuo_training.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--fold", required=True, help="0, 1, ... or all (train on every case)")
    parser.add_argument("--plans", default="nnUNetPlans", help="plans identifier in nnUNet_preprocessed/<dataset>/")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pretrained-weights", default=None)
    parser.add_argument("--trust-model", action="store_true", help="load a pretrained checkpoint with pickled code")
    parser.add_argument("--initial-lr", type=float, default=None)
    parser.add_argument("--no-final-validation", action="store_true",
                        help="skip nnU-Net's full-resolution validation of the fold after training")
    parser.add_argument("--continue", dest="continue_training", action="store_true")
    return parser


def prepare_trainer(args: argparse.Namespace) -> tuple[IWUOTrainer, dict]:
    """The trainer of one fold with its start weights in place (pretrained, resumed or new), and its record so far."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.run.run_training import maybe_load_checkpoint

    fold = args.fold if args.fold == "all" else int(args.fold)
    base = os.path.join(nnUNet_preprocessed, args.dataset)
    with open(os.path.join(base, f"{args.plans}.json")) as f:
        plans = json.load(f)
    with open(os.path.join(base, "dataset.json")) as f:
        dataset_json = json.load(f)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    plans["continue_training"] = args.continue_training
    trainer = IWUOTrainer(plans, args.configuration, fold, dataset_json, device)
    trainer.set_schedule(args.epochs, args.iterations)
    if args.initial_lr:
        trainer.set_initial_lr(args.initial_lr)
    record = {"pretrained_weights": args.pretrained_weights, "transferred": None, "plans": args.plans}
    if args.pretrained_weights and not args.continue_training:
        record["transferred"] = load_pretrained_network_weights(trainer, args.pretrained_weights, args.trust_model)
    else:
        maybe_load_checkpoint(trainer, args.continue_training, False, None)
    return trainer, record


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    trainer, record = prepare_trainer(args)
    start = time.time()
    trainer.run_training()
    record["training_seconds"] = round(time.time() - start, 1)
    record["final_validation"] = not args.no_final_validation
    if not args.no_final_validation:
        start = time.time()
        trainer.perform_actual_validation(False)
        record["validation_seconds"] = round(time.time() - start, 1)
    write_training_record(trainer, record)


if __name__ == "__main__":
    main()
