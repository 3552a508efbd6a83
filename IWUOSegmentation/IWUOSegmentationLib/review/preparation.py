"""Everything `iwuo review` checks and prepares before a browser front end starts.

Kept free of trame and slicer so that bad input (a port in use, a case the model cannot take,
an analysis of another case) is refused with a clear message before any server starts, and so
that the analysis, the slowest step, runs with progress on the terminal. An existing analysis is
reused only when it records this case's images and this model (analysis_identity.py).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import SimpleITK as sitk

from ..data.case_folders import find_case_files, match_channels
from ..errors import BadInputError
from ..storage.folder_lock import FolderLock, FolderLockedError, lock_folder
from .folder import ReviewFolder

#: How the browser front end names itself to a second opener of its review folder.
BROWSER_FRONT_END = "the browser review (iwuo review)"


@dataclass
class ReviewCase:
    name: str
    images: list  # SimpleITK images, one per model channel, in channel order
    channel_names: list[str]
    written_labels: dict[str, int]
    analysis_dir: Path
    folder: ReviewFolder  # where the log and the corrections go
    identity: dict  # of these images and the model (analysis_identity.py): the analysis must record the same
    target: Optional[str] = None  # review target (a structure of the model); None: the log's, else all foreground
    lock: Optional[FolderLock] = None  # the folder's lock, held from before the analysis to the session's end
    read_only: bool = False  # browse a folder another session holds: nothing is written

    @property
    def shape(self) -> tuple[int, int, int]:
        size = self.images[0].GetSize()
        return size[2], size[1], size[0]


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


def prepare_review_case(case: list[str], model_path: Optional[str], out_dir: Optional[str],
                        analysis_dir: Optional[str] = None, device: str = "auto", tta: bool = True,
                        progress: Optional[Callable[[float, str], None]] = None,
                        cancel: Optional[Callable[[], bool]] = None, target: Optional[str] = None,
                        read_only: bool = False) -> ReviewCase:
    """Open the model, match the case's images to its channels, lock the review folder (or, `read_only`,
    browse it without writing), run the analysis unless one is there (reused only for this case and model)."""
    from ..data.analysis_identity import analysis_identity, case_identity, check_analysis_folder, model_identity
    from ..data.case_images import CaseImages
    from ..data.structures import structures_from_dataset_json
    from ..nnunet.model_folder import check_channels, open_model

    model = open_model(model_path)
    if target is not None:  # a name the model does not have is refused before anything runs
        target = structures_from_dataset_json(model.dataset_json).get(target).name
    paths = [Path(p) for p in case]
    if len(paths) == 1 and paths[0].is_dir():
        files = find_case_files(paths[0], model.channel_names).images
        name = paths[0].name
    else:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise BadInputError(f"Case image(s) not found: {', '.join(missing)}.")
        check_channels(model, len(paths))
        files = match_channels(paths, model.channel_names) if len(paths) > 1 else paths
        name = paths[0].name.split(".")[0]
    images = CaseImages.from_files([str(f) for f in files])
    images.validate()
    folder = ReviewFolder(out_dir or Path("iwuo_review") / name)
    analysis = Path(analysis_dir) if analysis_dir else folder.analysis
    identity = analysis_identity(case_identity(images, model.channel_names), model_identity(model))
    if (analysis / "summary.json").is_file():  # reused only for this case and this model
        check_analysis_folder(analysis, identity["inputs"], identity["model"])
    lock = None
    if read_only:
        if not (analysis / "summary.json").is_file() or not folder.log.is_file():
            raise BadInputError(f"{folder.root} has no review to browse (no analysis or no budget log); "
                                "--read-only only opens an existing review.")
    else:
        try:
            lock = lock_folder(folder.root, BROWSER_FRONT_END, for_a_session=True)
        except FolderLockedError as exc:
            raise FolderLockedError(f"{exc} With --read-only, iwuo review browses it without writing.",
                                    exc.holder) from None
    try:
        return _prepare(model, files, name, images, folder, analysis, analysis_dir, device, tta, progress, cancel,
                        lock, read_only, identity, target)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _prepare(model, files, name, images, folder, analysis, analysis_dir, device, tta, progress, cancel, lock,
             read_only, identity, target) -> ReviewCase:
    from ..data.analysis_files import write_analysis

    if not (analysis / "summary.json").is_file():
        if analysis_dir:
            raise BadInputError(f"{analysis} is not an analysis folder (no summary.json); leave --analysis out to "
                                "analyse the case now.")
        from ..nnunet.inference import MemberPredictor

        predictor = MemberPredictor(model, device=device, members=("flips", "folds"), tta=tta)
        result = predictor.analyze(images, progress=progress, cancel=cancel)
        write_analysis(result, images, analysis, model.describe())
    folder.root.mkdir(parents=True, exist_ok=True)
    if not read_only and not folder.input_images():  # kept with the review: `iwuo export-dataset` trains on them
        folder.save_inputs(files)
    sitk_images = [sitk.ReadImage(str(f)) for f in files]
    return ReviewCase(name=name, images=sitk_images, channel_names=model.channel_names,
                      written_labels=model.written_labels, analysis_dir=analysis, folder=folder, identity=identity,
                      target=target, lock=lock, read_only=read_only)
