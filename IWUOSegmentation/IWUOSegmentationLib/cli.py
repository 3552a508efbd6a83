"""`iwuo` command line: phantom, train, analyze, evaluate, demo, review, export-dataset.

Exit codes: 0 ok, 1 internal error, 2 bad input, 3 bad model, 4 cancelled, 5 corrupt log, 6 out of memory.
With --progress json, progress goes to stderr as one JSON object per line
({"progress": 0.42, "message": "..."}) so a GUI can run the command as a background process.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from .errors import BadInputError, CancelledError, IWUOError


class Progress:
    """Human-readable or JSON-lines progress on stderr."""

    def __init__(self, mode: str = "text"):
        self.mode = mode
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if self.mode == "none":
            return
        if self.mode == "json":
            print(json.dumps({"progress": round(float(fraction), 4), "message": message}), file=sys.stderr, flush=True)
            return
        now = time.time()
        if fraction >= 1.0 or now - self._last > 1.0:
            self._last = now
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)


class CancelFlag:
    """Set by SIGTERM/SIGINT, by a cancel file appearing, or by EOF on stdin, so a run stops between
    sliding-window steps and writes nothing partial.

    The file and stdin channels exist for GUIs that start this command through a launcher
    (Slicer's PythonSlicer is CTKAppLauncher): a launcher forwards no signal, but the file is
    seen by the real child and the child inherits the launcher's stdin (analysis_process.py).
    """

    def __init__(self, cancel_file: str | None = None, stdin_eof: bool = False) -> None:
        self.cancelled = False
        self.cancel_file = Path(cancel_file) if cancel_file else None
        self._previous = {sig: signal.signal(sig, self._set) for sig in (signal.SIGTERM, signal.SIGINT)}
        if stdin_eof:
            import threading

            threading.Thread(target=self._wait_for_eof, daemon=True).start()

    def _wait_for_eof(self) -> None:
        # The raw descriptor, not sys.stdin: a daemon thread blocked in a buffered read makes the
        # interpreter abort at exit ("could not acquire lock for <stdin>").
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            return  # no readable stdin: this channel is off
        self.cancelled = True

    def restore(self) -> None:
        """Give the signals back (a server started afterwards must stop on Ctrl-C / SIGTERM)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _set(self, *_):
        self.cancelled = True

    def __call__(self) -> bool:
        if not self.cancelled and self.cancel_file is not None and self.cancel_file.exists():
            self.cancelled = True
        return self.cancelled


def _parse_spacing(text: str) -> tuple[float, float, float]:
    parts = [float(v) for v in text.replace("x", ",").split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("spacing must be three numbers, e.g. 2,2,2 or 1x1x5")
    return tuple(parts)


def _parse_fold(text: str):
    """A fold for --folds: a number or all (nnU-Net's train-on-every-case fold)."""
    if text.lower() == "all":
        return "all"
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a fold is a number (0, 1, ...) or all, not {text!r}")
    return int(text)


def cmd_phantom(args) -> int:
    from .phantom import write_phantoms

    root = write_phantoms(args.out, args.n, seed=args.seed, layout=args.layout, spacing=args.spacing,
                          mass_effect=args.mass_effect, region_based=not args.label_based,
                          progress=Progress(args.progress), label_convention=args.label_convention, kind=args.kind)
    print(json.dumps({"output": str(root), "cases": args.n}))
    return 0


def cmd_train(args) -> int:
    from .training import SmallNet, train

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


def _open_model(args):
    from .demo_model import demo_model_folder
    from .model_folder import open_model

    path = args.model or demo_model_folder()
    folds = [f.strip() for f in args.folds.split(",")] if getattr(args, "folds", None) else None
    return open_model(path, configuration=getattr(args, "configuration", None), folds=folds)


def cmd_analyze(args) -> int:
    from .analysis_files import write_analysis
    from .inference import CaseImages, MemberPredictor

    model = _open_model(args)
    case = CaseImages.from_files(args.input)
    members = tuple(m.strip() for m in args.members.split(",") if m.strip())
    predictor = MemberPredictor(model, device=args.device, members=members, dropout_samples=args.dropout_samples,
                                trust_model=args.trust_model, cpu_fallback=args.cpu_fallback, tta=not args.disable_tta)
    cancel = CancelFlag(args.cancel_file, stdin_eof=args.cancel_on_stdin_eof)
    result = predictor.analyze(case, progress=Progress(args.progress), cancel=cancel)
    if cancel():
        raise CancelledError("Analysis cancelled; nothing was written.")
    out = write_analysis(result, case, args.output, model.describe(), extension=args.extension)
    print(json.dumps({"output": str(out), "seconds": round(result.seconds, 1), "members": result.members}))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    out = run_demo(Path(args.out), n_cases=args.cases, device=args.device, progress=Progress(args.progress))
    print(f"Demo finished. Results: {out.resolve()} (open {out.resolve() / 'report.md'})")
    return 0


def cmd_review(args) -> int:
    from .review_case import check_port_free, prepare_review_case

    check_port_free(args.port, args.host)
    cancel = CancelFlag()
    try:
        case = prepare_review_case(args.case, args.model, args.out, args.analysis, device=args.device,
                                   tta=not args.disable_tta, progress=Progress(args.progress), cancel=cancel,
                                   target=args.target, read_only=args.read_only)
    finally:
        cancel.restore()
    try:
        from .web.review_app import run_review
    except ImportError as exc:
        raise BadInputError(f"The browser front end needs trame-slicer ({exc}); install the project's 'web' extra: "
                            "pip install -e '.[web]' -c constraints.txt") from exc
    check_port_free(args.port, args.host)
    run_review(case, args.port, host=args.host, budget_slices=args.budget_slices)
    return 0


def cmd_review_report(args) -> int:
    from .review_report import write_review_report

    report = write_review_report(args.log, args.out)
    print(json.dumps({"report": str(report.resolve())}))
    return 0


def cmd_export_dataset(args) -> int:
    from .corrected_dataset import export_reviews

    result = export_reviews(args.reviews, args.out, model_path=args.model, include_uncorrected=args.include_uncorrected,
                            progress=Progress(args.progress))
    for skipped in result.skipped:
        print(f"note: skipped {skipped['review']}: {skipped['reason']}", file=sys.stderr)
    print(result.to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iwuo", description="Expert-in-the-loop nnU-Net segmentation (IWUO).")
    parser.add_argument("--progress", choices=["text", "json", "none"], default="text",
                        help="progress on stderr: text, json lines (for GUIs) or none")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("phantom", help="generate synthetic brain-tumour phantoms")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=["nnunet", "cases"], default="cases")
    p.add_argument("--spacing", type=_parse_spacing, default=(2.0, 2.0, 2.0), help="mm, x,y,z (e.g. 1,1,5)")
    p.add_argument("--mass-effect", action="store_true")
    p.add_argument("--label-based", action="store_true", help="dataset.json with labels instead of BraTS regions")
    p.add_argument("--label-convention", default="brats2013", choices=["brats2013", "brats2021", "brats2023"],
                   help="BraTS labels to write: 2013-2015 (1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing), "
                        "2017-2021 (1 NCR/NET, 2 ED, 4 ET) or 2023-2024 (1 NCR, 2 ED, 3 ET); case folders are named "
                        "as that year's BraTS names them")
    p.add_argument("--kind", default="tumour", choices=["tumour", "tissue"],
                   help="tumour: gliomas on FLAIR+T1c; tissue: CSF/grey/white matter labels on T1 (not a tumour task)")
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser("train", help="plan, preprocess and train an nnU-Net model (CPU/GPU/MPS)")
    p.add_argument("--dataset", required=True, help="nnU-Net raw dataset folder DatasetXXX_Name")
    p.add_argument("--work", required=True, help="folder for nnU-Net's preprocessed data and results")
    p.add_argument("--folds", type=_parse_fold, nargs="+", default=[0],
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("analyze", help="segment a case and compute uncertainty maps")
    p.add_argument("--model", default=None, help="model folder, Dataset folder or zip (default: bundled demo model)")
    p.add_argument("--configuration", default=None)
    p.add_argument("--input", nargs="+", required=True, help="one image per model channel, in channel order")
    p.add_argument("--output", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--folds", default=None, help="comma-separated folds (default: all available)")
    p.add_argument("--members", default="flips,folds", help="any of flips,folds,dropout")
    p.add_argument("--dropout-samples", type=int, default=5)
    p.add_argument("--extension", default=".nii.gz", choices=[".nii.gz", ".nii", ".nrrd", ".mha"])
    p.add_argument("--trust-model", action="store_true", help="allow checkpoints that contain pickled code")
    p.add_argument("--cpu-fallback", action="store_true", help="if the GPU runs out of memory, retry on the CPU")
    p.add_argument("--disable-tta", action="store_true",
                   help="no test-time mirroring (8x faster in 3-D; no flip members), like nnUNetv2_predict --disable_tta")
    p.add_argument("--cancel-file", default=None,
                   help="stop (exit code 4, nothing written) as soon as this file exists; for GUIs behind a launcher")
    p.add_argument("--cancel-on-stdin-eof", action="store_true",
                   help="stop (exit code 4, nothing written) when stdin is closed, e.g. when the GUI that started it exits")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("demo", help="phantoms -> analysis with the bundled model -> IWUO evaluation")
    p.add_argument("--out", default="iwuo_demo_output")
    p.add_argument("--cases", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("review", help="guided review of one case in the browser (trame-slicer)")
    p.add_argument("--case", nargs="+", required=True, help="case folder, or one image per model channel")
    p.add_argument("--model", default=None, help="model folder, Dataset folder or zip (default: bundled demo model)")
    p.add_argument("--analysis", default=None, help="an existing `iwuo analyze` folder of this case")
    p.add_argument("--out", default=None, help="where the budget log and corrections go (default iwuo_review/<case>)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to serve on; 0.0.0.0 serves other machines (no login: prefer an SSH tunnel)")
    p.add_argument("--budget-slices", type=int, default=20)
    p.add_argument("--target", default=None,
                   help="structure to rank slices for: a label or region name of the model's dataset.json, or "
                        "'all foreground' (default; a BraTS model's whole tumour); a resumed review keeps its own")
    p.add_argument("--device", default="auto")
    p.add_argument("--disable-tta", action="store_true", help="no mirror members when analysing (8x faster)")
    p.add_argument("--read-only", action="store_true",
                   help="browse a review another session holds open: no edits kept, nothing written")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("review-report", help="report of a review's correction budget from its budget log")
    p.add_argument("--log", required=True, help="review.budget.jsonl of a session (desktop or browser)")
    p.add_argument("--out", default=None, help="folder for the report (default: beside the log)")
    p.set_defaults(func=cmd_review_report)

    p = sub.add_parser("export-dataset", help="reviewed cases (images + corrected segmentation) as an nnU-Net dataset")
    p.add_argument("--reviews", nargs="+", required=True,
                   help="review folders (or a folder holding them, e.g. ~/IWUOSegmentation)")
    p.add_argument("--model", default=None,
                   help="the model whose channels and labels the dataset takes (default: the one the reviews used)")
    p.add_argument("--out", required=True, help="new nnU-Net raw dataset folder .../DatasetXXX_Name")
    p.add_argument("--include-uncorrected", action="store_true",
                   help="also export reviews without any correction (their prediction as the label)")
    p.set_defaults(func=cmd_export_dataset)

    from .evaluate_command import add_evaluate_parser

    add_evaluate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("nnUNet_def_n_proc", "2")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CancelledError as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return exc.exit_code
    except IWUOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except PermissionError as exc:  # a folder or file of the user's that this account may not use
        print(f"error: {exc}", file=sys.stderr)
        return BadInputError.exit_code
    except OSError as exc:  # disk full, read-only folder: the writes are atomic, so nothing half-written is left
        if exc.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            traceback.print_exc()
            return 1
        print(f"error: cannot write {exc.filename or 'the output'}: {exc.strerror}; earlier results are intact. "
              "Free space (or choose a writable folder) and run again.", file=sys.stderr)
        return BadInputError.exit_code
    except Exception:  # an internal error (a FileNotFoundError too: missing user files raise BadInputError)
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
