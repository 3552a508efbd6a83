"""`iwuo` command line: phantom, train, analyze, evaluate, demo, review, review-report, export-dataset.

One module per command (add_parser + run). Exit codes: 0 ok, 1 internal error, 2 bad input, 3 bad model,
4 cancelled, 5 corrupt log, 6 out of memory. With --progress json, progress goes to stderr as one JSON
object per line so a GUI can run the command as a background process (progress.py).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback

from ..errors import BadInputError, CancelledError, IWUOError
from . import analyze, calibrate, demo, evaluate, export_dataset, phantom, review, review_report, train

COMMANDS = (phantom, train, analyze, demo, review, review_report, export_dataset, calibrate, evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iwuo", description="Expert-in-the-loop nnU-Net segmentation (IWUO).")
    parser.add_argument("--progress", choices=["text", "json", "none"], default="text",
                        help="progress on stderr: text, json lines (for GUIs) or none")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
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
