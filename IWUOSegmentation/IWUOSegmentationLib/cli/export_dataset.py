"""`iwuo export-dataset`: reviewed cases as an nnU-Net dataset (learning from corrections)."""

from __future__ import annotations

import sys

from .progress import Progress


def add_parser(sub) -> None:
    p = sub.add_parser("export-dataset", help="reviewed cases (images + corrected segmentation) as an nnU-Net dataset")
    p.add_argument("--reviews", nargs="+", required=True,
                   help="review folders (or a folder holding them, e.g. ~/IWUOSegmentation)")
    p.add_argument("--model", default=None,
                   help="the model whose channels and labels the dataset takes (default: the one the reviews used)")
    p.add_argument("--out", required=True, help="new nnU-Net raw dataset folder .../DatasetXXX_Name")
    p.add_argument("--include-uncorrected", action="store_true",
                   help="also export reviews without any correction (their prediction as the label)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..review.corrected_dataset import export_reviews

    result = export_reviews(args.reviews, args.out, model_path=args.model, include_uncorrected=args.include_uncorrected,
                            progress=Progress(args.progress))
    for skipped in result.skipped:
        print(f"note: skipped {skipped['review']}: {skipped['reason']}", file=sys.stderr)
    print(result.to_json())
    return 0
