"""`iwuo calibrate`: fit the model's probability calibration and the expert time model from finished reviews,
or check a calibration file against a model or an analysis (`--check`)."""

from __future__ import annotations

import json
import sys

from .arguments import add_cancel_options
from .progress import CancelFlag, Progress


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="calibrate the model's probabilities and the time model to your site's reviews")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--reviews", nargs="+",
                      help="review folders (or a folder holding them, e.g. ~/IWUOSegmentation); read, never written")
    what.add_argument("--check", metavar="FILE",
                      help="check a calibration file instead: against --model, or applied in memory to --analysis "
                           "(nothing is written); exit code 2 if it is damaged, of another model or fitted on no data")
    p.add_argument("--model", default=None,
                   help="the model the reviews were analysed with (default: the bundled demo model)")
    p.add_argument("--out", default=None,
                   help="calibration file to write (default: ~/.iwuo/calibrations/<model key>.json, where the "
                        "analysis finds it for that model)")
    p.add_argument("--analysis", default=None, help="with --check: an analysis folder to apply the calibration to")
    add_cancel_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..nnunet.model_folder import open_model

    if args.check:
        from ..review.site_calibration import check_calibration_file

        model = open_model(args.model) if args.analysis is None else None
        print(json.dumps(check_calibration_file(args.check, model, args.analysis), indent=2))
        return 0
    from ..review.site_calibration import calibrate_reviews

    progress = cancellable(Progress(args.progress), CancelFlag(args.cancel_file, stdin_eof=args.cancel_on_stdin_eof))
    result = calibrate_reviews(args.reviews, open_model(args.model), args.out, progress=progress)
    for skipped in result.summary["skipped"]:
        print(f"note: skipped {skipped['review']}: {skipped['reason']}", file=sys.stderr)
    if "refused" in result.summary["time_model"]:
        print(f"note: no time model fitted: {result.summary['time_model']['refused']}", file=sys.stderr)
    print(json.dumps(result.summary, indent=2))
    return 0


def cancellable(progress, cancel):
    """The progress callback of the fit, stopping it (CancelledError, exit code 4) at its next step once `cancel()`
    says so; the file is written only at the end, so a cancelled fit leaves nothing."""
    from ..errors import CancelledError

    def step(fraction: float, message: str) -> None:
        if fraction < 1.0 and cancel():  # 1.0 comes after the file is written
            raise CancelledError("Calibration cancelled; nothing was written.")
        progress(fraction, message)

    return step
