"""Argument types shared by several commands."""

from __future__ import annotations

import argparse

from ..nnunet.analysis_settings import AnalysisSettings, parse_members


def parse_spacing(text: str) -> tuple[float, float, float]:
    """Three spacings in mm, x,y,z: "2,2,2" or "1x1x5"."""
    parts = [float(v) for v in text.replace("x", ",").split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("spacing must be three numbers, e.g. 2,2,2 or 1x1x5")
    return tuple(parts)


def parse_fold(text: str):
    """A fold for --folds: a number or all (nnU-Net's train-on-every-case fold)."""
    if text.lower() == "all":
        return "all"
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a fold is a number (0, 1, ...) or all, not {text!r}")
    return int(text)


def parse_folds(text: str | None) -> list[str] | None:
    """--folds of analyze/evaluate: comma-separated fold names, None (all available) when not given."""
    return [f.strip() for f in text.split(",")] if text else None


def analysis_settings(args: argparse.Namespace) -> AnalysisSettings:
    """The analysis options a command takes (--device, --members, --disable-tta, ...); the rest stay the defaults."""
    given = {"device": getattr(args, "device", None),
             "members": parse_members(args.members) if getattr(args, "members", None) else None,
             "tta": not args.disable_tta if hasattr(args, "disable_tta") else None,
             "dropout_samples": getattr(args, "dropout_samples", None),
             "trust_model": getattr(args, "trust_model", None), "cpu_fallback": getattr(args, "cpu_fallback", None)}
    return AnalysisSettings(**{k: v for k, v in given.items() if v is not None})


def add_calibration_options(parser: argparse.ArgumentParser) -> None:
    """--calibration and --relabel-calibrated of the commands that analyse (analyze, review)."""
    parser.add_argument("--calibration", default=None, metavar="FILE|none",
                        help="the site calibration of the model's probabilities (iwuo calibrate) applied after inference; "
                             "default: the file saved for this model (~/.iwuo/calibrations/<model key>.json) when there is "
                             "one; 'none': uncalibrated. A damaged file or one of another model: exit code 2")
    parser.add_argument("--relabel-calibrated", action="store_true",
                        help="write the label map the calibrated probabilities give (default: the model's own is kept)")


def add_cancel_options(parser: argparse.ArgumentParser) -> None:
    """The cancel channels of a command a GUI runs as a child behind a launcher (cli/analysis_process.py)."""
    parser.add_argument("--cancel-file", default=None,
                        help="stop (exit code 4, nothing written) as soon as this file exists; for GUIs behind a launcher")
    parser.add_argument("--cancel-on-stdin-eof", action="store_true",
                        help="stop (exit code 4, nothing written) when stdin is closed, e.g. when the GUI that started it exits")
