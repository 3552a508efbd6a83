"""`iwuo review`: one case's guided review in the browser (trame-slicer)."""

from __future__ import annotations

import errno
import socket

from ..errors import BadInputError
from ..nnunet.analysis_settings import DEFAULT_DEVICE
from ..review.budget_log import DEFAULT_BUDGET_SLICES
from .arguments import add_calibration_options, analysis_settings
from .progress import CancelFlag, Progress


def add_parser(sub) -> None:
    p = sub.add_parser("review", help="guided review of one case in the browser (trame-slicer)")
    p.add_argument("--case", nargs="+", required=True, help="case folder, or one image per model channel")
    p.add_argument("--model", default=None, help="model folder, Dataset folder or zip (default: bundled demo model)")
    p.add_argument("--analysis", default=None, help="an existing `iwuo analyze` folder of this case")
    p.add_argument("--out", default=None, help="where the budget log and corrections go (default iwuo_review/<case>)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to serve on; 0.0.0.0 serves other machines (no login: prefer an SSH tunnel)")
    p.add_argument("--budget-slices", type=int, default=DEFAULT_BUDGET_SLICES,
                   help=f"slices of the correction budget (default {DEFAULT_BUDGET_SLICES})")
    p.add_argument("--target", default=None,
                   help="structure to rank slices for: a label or region name of the model's dataset.json, or "
                        "'all foreground' (default; a BraTS model's whole tumour); a resumed review keeps its own")
    p.add_argument("--device", default=DEFAULT_DEVICE)
    p.add_argument("--disable-tta", action="store_true", help="no mirror members when analysing (8x faster)")
    p.add_argument("--read-only", action="store_true",
                   help="browse a review another session holds open: no edits kept, nothing written")
    add_calibration_options(p)  # an existing analysis: see review/preparation.py
    p.set_defaults(func=run)


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Refuse a port another program listens on, before the app loads anything."""
    if not 0 < port < 65536:
        raise BadInputError(f"Port {port} is not a TCP port (1-65535).")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the server will: a port in TIME_WAIT is free, one with a listener is not (Linux semantics)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise BadInputError(f"Port {port} on {host} is already in use (or not allowed); choose another with "
                                    "--port.") from exc
            raise


def run(args) -> int:
    from ..review.preparation import ReviewRequest, prepare_review_case

    check_port_free(args.port, args.host)
    request = ReviewRequest(case=args.case, model=args.model, review_folder=args.out, analysis_folder=args.analysis,
                            settings=analysis_settings(args), target=args.target, read_only=args.read_only,
                            calibration=args.calibration, relabel_calibrated=args.relabel_calibrated)
    cancel = CancelFlag()
    try:
        case = prepare_review_case(request, progress=Progress(args.progress), cancel=cancel)
    finally:
        cancel.restore()
    try:
        from ..web.review_app import run_review
    except ImportError as exc:
        raise BadInputError(f"The browser front end needs trame-slicer ({exc}); install the project's 'web' extra: "
                            "pip install -e '.[web]' -c constraints.txt") from exc
    check_port_free(args.port, args.host)
    run_review(case, args.port, host=args.host, budget_slices=args.budget_slices)
    return 0
