"""`iwuo train`: plan, preprocess and train an nnU-Net model with nnU-Net's own commands."""

from __future__ import annotations

import sys

from .arguments import parse_fold
from .progress import Progress


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="plan, preprocess and train an nnU-Net model (CPU/GPU/MPS)")
    p.add_argument("--dataset", required=True, help="nnU-Net raw dataset folder DatasetXXX_Name")
    p.add_argument("--work", required=True, help="folder for nnU-Net's preprocessed data and results")
    p.add_argument("--folds", type=parse_fold, nargs="+", default=[0],
                   help="folds to train: numbers and/or all (every case; no held-out validation). With fewer than 5 "
                        "cases the numbered folds are leave-one-out (a splits_final.json is written)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    p.add_argument("--configuration", default=None,
                   help="default: the pretrained model's configuration when fine-tuning, else 3d_fullres")
    p.add_argument("--new-configuration", default=None, help="save the plans edits as a new configuration")
    p.add_argument("--device", default="cpu")
    p.add_argument("--features", type=int, nargs="+", default=None, help="features per stage, e.g. 8 16 32 64")
    p.add_argument("--patch-size", type=int, nargs=3, default=None)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0, help="Dropout3d probability in the network (0: none)")
    p.add_argument("--pretrained-weights", default=None,
                   help="fine-tune: a model folder (its fold_all, else first fold), a fold_X folder or a checkpoint; "
                        "the dataset is then preprocessed with that model's plans (spacing, normalisation, patch, network)")
    p.add_argument("--initial-lr", type=float, default=None, help="start of the learning-rate schedule (nnU-Net: 0.01)")
    p.add_argument("--no-final-validation", action="store_true",
                   help="skip nnU-Net's full-resolution validation after training (it can take longer than a short "
                        "fine-tune on a CPU)")
    p.add_argument("--trust-model", action="store_true", help="allow a pretrained checkpoint that contains pickled code")
    p.add_argument("--continue", dest="continue_training", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..nnunet.training import SmallNet, train

    net = None
    if args.features or args.patch_size or args.dropout:
        net = SmallNet(features=tuple(args.features or (8, 16, 32, 64)),
                       patch_size=tuple(args.patch_size) if args.patch_size else None,
                       batch_size=args.batch_size, dropout=args.dropout)
    result = train(args.dataset, args.work, args.folds, epochs=args.epochs, iterations_per_epoch=args.iterations,
                   configuration=args.configuration, device=args.device, net=net,
                   new_configuration=args.new_configuration, pretrained_weights=args.pretrained_weights,
                   continue_training=args.continue_training, final_validation=not args.no_final_validation,
                   initial_lr=args.initial_lr, trust_model=args.trust_model, progress=Progress(args.progress))
    if result.splits:
        print(f"note: {result.splits}", file=sys.stderr)
    print(result.to_json())
    return 0
