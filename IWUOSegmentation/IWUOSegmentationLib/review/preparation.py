"""Everything `iwuo review` checks and prepares before a browser front end starts.

Kept free of trame and slicer so that bad input (a case the model cannot take, an analysis of
another case) is refused with a clear message before any server starts, and so that the analysis,
the slowest step, runs with progress on the terminal (the port is checked by cli/review.py). An existing analysis is
reused only when it records this case's images and this model (analysis_identity.py).

The calibration asked for (`--calibration`, default: the file saved for the model) is read and checked before
anything runs. A saved analysis made with another calibration than an explicit `--calibration FILE|none` is
analysed again when it is the review folder's own and no review has begun on it, and refused otherwise; without
`--calibration` it is reused as it was made (data/calibration.keep_saved_analysis).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..data.case_folders import find_case_files, match_channels
from ..errors import BadInputError, MissingInputError
from ..nnunet.analysis_settings import DEFAULT_SETTINGS, AnalysisSettings
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


@dataclass(frozen=True)
class ReviewRequest:
    """What opening a review asks for (`iwuo review`'s options): the case, the model, where the review goes."""

    case: list[str]  # a case folder, or one image per model channel in channel order
    model: Optional[str] = None  # model folder, Dataset folder or zip; None: the bundled demo model
    review_folder: Optional[str] = None  # where the log and corrections go; None: iwuo_review/<case>
    analysis_folder: Optional[str] = None  # an existing analysis of this case; None: the review folder's own
    settings: AnalysisSettings = DEFAULT_SETTINGS  # how the case is analysed when there is no analysis yet
    target: Optional[str] = None  # review target (a structure of the model); None: the log's, else all foreground
    read_only: bool = False  # browse a review another session holds: nothing is written
    calibration: Optional[str] = None  # a calibration file, "none", or None: the one saved for the model, if any
    relabel_calibrated: bool = False  # a new analysis writes the label map of the calibrated probabilities


def prepare_review_case(request: ReviewRequest, progress: Optional[Callable[[float, str], None]] = None,
                        cancel: Optional[Callable[[], bool]] = None) -> ReviewCase:
    """Open the model, match the case's images to its channels, lock the review folder (or, read-only, browse it
    without writing), run the analysis unless one is there (reused only for this case and model)."""
    from ..data.analysis_identity import analysis_identity, case_identity, check_analysis_folder, model_identity
    from ..data.calibration import keep_saved_analysis, resolve_calibration
    from ..data.case_images import CaseImages
    from ..data.structures import structures_from_dataset_json
    from ..nnunet.model_folder import open_model

    model = open_model(request.model)
    target = request.target
    if target is not None:  # a name the model does not have is refused before anything runs
        target = structures_from_dataset_json(model.dataset_json).get(target).name
    files, name = _case_files(request.case, model)
    images = CaseImages.from_files([str(f) for f in files])
    images.validate()
    folder = ReviewFolder(request.review_folder or Path("iwuo_review") / name)
    analysis = Path(request.analysis_folder) if request.analysis_folder else folder.analysis
    identity = analysis_identity(case_identity(images, model.channel_names), model_identity(model))
    calibration = resolve_calibration(request.calibration, identity["model"])  # a bad file: refused before anything
    analyse = not (analysis / "summary.json").is_file()
    if not analyse:  # reused only for this case and this model, and for the calibration asked for
        summary = check_analysis_folder(analysis, identity["inputs"], identity["model"])
        replaceable = analysis.resolve() == folder.analysis.resolve() and not folder.log.is_file() and not request.read_only
        analyse = not keep_saved_analysis(summary, request.calibration, calibration, replaceable=replaceable,
                                          where=analysis, relabel=request.relabel_calibrated)
    elif request.analysis_folder:
        raise BadInputError(f"{analysis} is not an analysis folder (no summary.json); leave --analysis out to "
                            "analyse the case now.")
    lock = _lock_review_folder(folder, analysis, request.read_only)
    try:
        if analyse:
            from ..nnunet.analysis import CaseAnalyzer

            CaseAnalyzer(model, request.settings, calibration, request.relabel_calibrated).analyze_into(
                images, analysis, progress=progress, cancel=cancel)
        folder.root.mkdir(parents=True, exist_ok=True)
        if not request.read_only and not folder.input_images():  # kept with the review: export-dataset trains on them
            folder.save_inputs(files)
        # the images as read for the identity check (float32, the grid of the first): not read a second time
        return ReviewCase(name=name, images=[images.to_image(a) for a in images.arrays], channel_names=model.channel_names,
                          written_labels=model.written_labels, analysis_dir=analysis, folder=folder, identity=identity,
                          target=target, lock=lock, read_only=request.read_only)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _case_files(case: list[str], model) -> tuple[list[Path], str]:
    """The case's channel images in the model's channel order, and the case's name."""
    from ..nnunet.model_folder import check_channels

    paths = [Path(p) for p in case]
    if len(paths) == 1 and paths[0].is_dir():
        return find_case_files(paths[0], model.channel_names).images, paths[0].name
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MissingInputError(f"Case image(s) not found: {', '.join(missing)}.")
    check_channels(model, len(paths))
    return (match_channels(paths, model.channel_names) if len(paths) > 1 else paths), paths[0].name.split(".")[0]


def _lock_review_folder(folder: ReviewFolder, analysis: Path, read_only: bool) -> Optional[FolderLock]:
    """The review folder's lock, held until the session ends; none when only browsing (there must be a review)."""
    if read_only:
        if not (analysis / "summary.json").is_file() or not folder.log.is_file():
            raise BadInputError(f"{folder.root} has no review to browse (no analysis or no budget log); "
                                "--read-only only opens an existing review.")
        return None
    try:
        return lock_folder(folder.root, BROWSER_FRONT_END, for_a_session=True)
    except FolderLockedError as exc:
        raise FolderLockedError(f"{exc} With --read-only, iwuo review browses it without writing.",
                                exc.holder) from None
