"""`iwuo analyze`: segment a case and write the members' uncertainty maps (the GUI runs this as a child)."""

from __future__ import annotations

import json
from pathlib import Path

from ..nnunet.analysis_settings import DEFAULT_DEVICE, DEFAULT_MEMBERS_TEXT, MEMBER_KINDS, AnalysisSettings
from .arguments import add_calibration_options, add_cancel_options, analysis_settings, parse_folds
from .progress import CancelFlag, Progress


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="segment a case and compute uncertainty maps")
    p.add_argument("--model", default=None, help="model folder, Dataset folder or zip (default: bundled demo model)")
    p.add_argument("--configuration", default=None)
    p.add_argument("--input", nargs="+", required=True, help="one image per model channel, in channel order")
    p.add_argument("--output", required=True)
    p.add_argument("--device", default=DEFAULT_DEVICE)
    p.add_argument("--folds", default=None, help="comma-separated folds (default: all available)")
    p.add_argument("--members", default=DEFAULT_MEMBERS_TEXT, help=f"any of {','.join(MEMBER_KINDS)}")
    p.add_argument("--dropout-samples", type=int, default=AnalysisSettings.dropout_samples)
    p.add_argument("--extension", default=".nii.gz", choices=[".nii.gz", ".nii", ".nrrd", ".mha"])
    p.add_argument("--trust-model", action="store_true", help="allow checkpoints that contain pickled code")
    p.add_argument("--cpu-fallback", action="store_true", help="if the GPU runs out of memory, retry on the CPU")
    p.add_argument("--disable-tta", action="store_true",
                   help="no test-time mirroring (8x faster in 3-D; no flip members), like nnUNetv2_predict --disable_tta")
    add_calibration_options(p)
    add_cancel_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.analysis_identity import model_identity
    from ..data.calibration import resolve_calibration
    from ..data.case_images import CaseImages
    from ..nnunet.model_folder import open_model

    model = open_model(args.model, configuration=args.configuration, folds=parse_folds(args.folds))
    case = CaseImages.from_files(args.input)  # a missing or unreadable image is refused before torch loads
    calibration = resolve_calibration(args.calibration, model_identity(model))  # so is a bad calibration file
    from ..nnunet.analysis import CaseAnalyzer

    cancel = CancelFlag(args.cancel_file, stdin_eof=args.cancel_on_stdin_eof)
    result = CaseAnalyzer(model, analysis_settings(args), calibration, args.relabel_calibrated).analyze_into(
        case, args.output, progress=Progress(args.progress), cancel=cancel, extension=args.extension)
    print(json.dumps({"output": str(Path(args.output)), "seconds": round(result.seconds, 1), "members": result.members,
                      "calibration": (result.calibration or {}).get("file")}))
    return 0
