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
