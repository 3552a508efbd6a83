"""One case review in the scene, as both front ends drive it: open or resume, act, show, close.

Why one controller: every decision the desktop module (IWUOSegmentation.py) and the browser app
(web/review_app.py) share lives here, on MRML only, so it is tested on slicer-core and the front
ends are left with widgets. It owns the review session of one review folder, the heatmap
overlays and the reference segmentation, and it keeps them as node references on the ranking
table so a saved scene, reopened (even into a scene whose node IDs are taken), resumes with its
overlays and reference. A scene close drops every node it held (IDs are reused after Clear()).
"""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..review.budget_log import DEFAULT_BUDGET_SLICES, BudgetSummary
from ..review.folder import ReviewFolder
from ..storage.portable_names import portable_folder_name
from .ranking_navigation import RANKING_TABLE, RED_VIEW
from .review_session import ATTR_LOG, ROLE_VOLUME, ReviewSession, SessionOptions
from .slice_view import slice_index_of_view

#: "Run this after the current event" of a front end (Qt: QTimer.singleShot(0, f); asyncio: loop.call_soon(f)).
Scheduler = Callable[[Callable[[], None]], None]
#: The segment editor node of the module's own embedded editor; not the Segment Editor module's
#: ("SegmentEditor"), which would share its active effect and segmentation with it.
SEGMENT_EDITOR_SINGLETON_TAG = "IWUOSegmentation"
ROLE_OVERLAY = "iwuoOverlay_"  # + overlay kind
ROLE_REFERENCE_SEGMENTATION = "iwuoReference"


@dataclass(frozen=True)
class ReviewProgress:
    """What both front ends show of a review, from one look at its log and its ranking."""

    slices_corrected: int = 0
    budget_slices: int = 1
    budget_text: str = ""  # 'k of N slices · mm:ss · estimated Dice gain'
    status_text: str = ""  # 'Rank r of n: slice s'
    rank: int = 0  # the 1-based rank shown; 0: none yet
    view_slice: int = -1  # the slice the Red view's plane centre is on; -1 without a Red view
    target: Optional[str] = None
    rows: tuple = ()  # {"rank", "slice", "iwuo", "status"} of each ranked slice, best first


@dataclass(frozen=True)
class Action:
    name: str  # ReviewSession method
    label: str
    key: str


#: The review actions, in button order, with the keys both front ends bind.
ACTIONS = (Action("previous", "Previous", "p"), Action("next", "Next", "n"), Action("skip", "Skip", "s"),
           Action("mark_corrected", "Mark corrected", "d"))
SHORTCUTS = {a.key: a.name for a in ACTIONS}


def segment_editor_node(scene):
    """The module's segment editor node: a singleton with its own tag, so it survives scene.Clear(0) and is
    never the Segment Editor module's node (the pattern of Slicer's SegmentEditor.selectParameterNode)."""
    node = scene.GetSingletonNode(SEGMENT_EDITOR_SINGLETON_TAG, "vtkMRMLSegmentEditorNode")
    if node is None:
        import slicer

        node = slicer.vtkMRMLSegmentEditorNode()
        node.SetSingletonTag(SEGMENT_EDITOR_SINGLETON_TAG)
        node = scene.AddNode(node)
    return node


def deactivate_editor_effect(scene) -> None:
    """No active effect on the module's segment editor node. A scene saved while Paint was active restores
    "Paint" on that node when it is loaded or imported, and an embedded editor observing the node would then
    paint in every view outside the module; the module calls this after a load or import it is not shown for."""
    segment_editor_node(scene).SetActiveEffectName("")


def red_node(scene, node_class: str = "vtkMRMLSliceNode"):
    """The Red view's slice (or composite) node, or None; the slice a reviewer sees is read from it."""
    for i in range(scene.GetNumberOfNodesByClass(node_class)):
        node = scene.GetNthNodeByClass(i, node_class)
        if node.GetLayoutName() == RED_VIEW:
            return node
    return None


def budget_text(summary: BudgetSummary, budget_slices: int) -> str:
    """'k of N slices · mm:ss · estimated Dice gain', N the session's budget, as both front ends show it."""
    minutes, seconds = divmod(int(summary.seconds_used), 60)
    text = (f"{summary.slices_corrected} of {budget_slices} slices · {minutes:02d}:{seconds:02d} · "
            f"estimated Dice gain {summary.estimated_dice_gain:+.3f}")
    if summary.measured_foreground_dice is not None:
        text += f" · all-foreground Dice {summary.measured_foreground_dice:.3f}"
    return text


def scene_overlays(table) -> dict[str, object]:
    """The heatmap overlays a ranking table references (kind -> volume node)."""
    overlays = {}
    for i in range(table.GetNumberOfNodeReferenceRoles()):
        role = table.GetNthNodeReferenceRole(i)
        if role.startswith(ROLE_OVERLAY) and table.GetNodeReference(role) is not None:
            overlays[role[len(ROLE_OVERLAY):]] = table.GetNodeReference(role)
    return overlays


def scene_reviews(scene, folder: ReviewFolder, volume) -> bool:
    """The scene holds the review of `folder` on `volume` (a reopened scene, or one a closed controller left)."""
    table = scene.GetFirstNodeByName(RANKING_TABLE)
    referenced = table.GetNodeReference(ROLE_VOLUME) if table is not None else None
    return (referenced is not None and referenced.GetID() == volume.GetID()
            and Path(table.GetAttribute(ATTR_LOG) or "") == folder.log)


def model_channels(model_path: str) -> tuple[list[str], str]:
    """The model's channel names and the line the panel shows; ([], why) when `model_path` is no model."""
    from ..nnunet.model_folder import open_model

    try:
        channels = open_model(model_path).channel_names
    except Exception as exc:  # not a model folder (yet, while typing): the panel says why
        return [], str(exc)
    return channels, f"Model channels: {', '.join(channels)}"


def match_volume(scene, channel: str):
    """First scalar volume whose name contains the channel name (case and punctuation ignored), or None."""
    key = "".join(ch for ch in channel.lower() if ch.isalnum())
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
        if key and key in "".join(ch for ch in (node.GetName() or "").lower() if ch.isalnum()):
            return node
    return None


def default_review_folder(volume_name: str) -> Path:
    """Where a desktop review goes when the user chose no folder: one folder named after the volume, valid on
    every system (DICOM volumes are named "<series>: <description>", which may hold "/")."""
    return Path(os.path.expanduser("~")) / "IWUOSegmentation" / portable_folder_name(volume_name)


def require_volumes(volumes: list) -> None:
    """One volume per model channel, or a clear error."""
    from ..errors import BadInputError

    if not volumes or any(v is None for v in volumes):
        raise BadInputError("Choose one volume for each model channel.")


def review_folder_of(chosen: str | os.PathLike, volume_name: str) -> tuple[str, bool]:
    """The review folder to use (the chosen one, else the default for the volume) and whether it has an analysis."""
    folder = ReviewFolder(chosen if str(chosen) not in ("", ".") else default_review_folder(volume_name))
    return str(folder.root), folder.has_analysis()


class ReviewController:
    """The review of one case in `scene`: the one thing the front ends call (they never touch the session).

    `schedule` is the front end's "run this after the current event": an edit is accounted for (saved, then
    logged) once the event that made it is over, as one stroke fires several segmentation events. `on_logged`
    is its display, called with each event the session logs (so it never reads the log file)."""

    def __init__(self, scene, schedule: Optional[Scheduler] = None, front_end: str = "Slicer",
                 on_logged: Optional[Callable[[dict], None]] = None):
        self.scene = scene
        self.schedule = schedule
        self._accounting_scheduled = False
        #: Callbacks for each logged event, shared with every session this controller takes (resume, target).
        self.on_logged: list[Callable[[dict], None]] = [on_logged] if on_logged is not None else []
        self.front_end = front_end  # named to a second opener of the review folder (storage/folder_lock.py)
        #: Scene closes seen (scene_about_to_close): node IDs are reused after a close, so an ID is only
        #: believed together with this count (volumes_by_id).
        self.scene_closes = 0
        self._unresumable = None  # the ranking table whose resume failed: said once, not retried
        self.session: Optional[ReviewSession] = None
        self.close()

    # -- open, resume, close ----------------------------------------------------------------------
    def has_saved_review(self) -> bool:
        """The scene holds a review (a reopened scene) that this controller has not taken up, nor failed to."""
        table = self.scene.GetFirstNodeByName(RANKING_TABLE)
        return self.session is None and table is not None and table is not self._unresumable

    def resume_saved_review(self) -> tuple[bool, str]:
        """Take up the review the scene holds, as the module does at each entry and scene import: (resumed, line).
        A review that cannot be resumed gives its line once (what is wrong and what to do); later calls return
        (False, "") and do not try again until another scene is opened. An error that is not the user's to fix
        (not an IWUOError or OSError) is named with its type and its traceback logged."""
        from ..errors import IWUOError

        if not self.has_saved_review():
            return False, ""
        table = self.scene.GetFirstNodeByName(RANKING_TABLE)
        try:
            self.resume()
        except Exception as exc:
            self._unresumable = table
            if not isinstance(exc, (IWUOError, OSError)):
                logging.exception("Resuming the review saved with the scene failed")
            why = str(exc) if isinstance(exc, (IWUOError, OSError)) else f"{type(exc).__name__}: {exc} (see the log)."
            return False, (f"The review saved with this scene cannot be resumed: {why} Fix that and press Analyse "
                           "with its volumes and review folder, or delete the table 'IWUO ranking' to start again.")
        return True, ""

    def open_case(self, review_folder: str | os.PathLike, volume, written_labels: dict[str, int],
                  expected_identity: dict, analysis_dir: str | os.PathLike | None = None,
                  budget_slices: Optional[int] = DEFAULT_BUDGET_SLICES, show_first: bool = False,
                  target: Optional[str] = None, read_only: bool = False, lock=None) -> ReviewSession:
        """Review `volume` with the analysis of `review_folder` (or `analysis_dir`): the saved corrections (else
        the prediction) and the heatmaps into the scene, the IWUO ranking, the session (its log resumed, shown
        where the reviewer stopped; a fresh one on its first slice if `show_first`).

        `expected_identity` is the identity of the images and model in hand (`identity_of_volumes`): an
        analysis of anything else is refused (analysis_identity.check_identity). Opening the case already
        under review, or one whose review the scene holds, adds no nodes. `target` is the structure to rank
        (None: the one the review's log was last ranked on, else all foreground). The session locks the review
        folder (`lock`: taken earlier by the caller); `read_only` browses a folder another session holds."""
        from ..data.analysis_identity import read_summary
        from .review_workflow import load_analysis_into_scene, open_review, read_corrected_segmentation, review_target

        folder = ReviewFolder(review_folder)
        if self.session is not None and self.folder == folder and self.volume is volume:
            return self.session
        if scene_reviews(self.scene, folder, volume):
            return self.resume()
        self.close()
        import slicer.util

        analysis_dir = analysis_dir or folder.analysis
        target = review_target(read_summary(analysis_dir), folder.log, target)
        corrected = read_corrected_segmentation(folder.corrected, slicer.util.arrayFromVolume(volume).shape)
        loaded = load_analysis_into_scene(self.scene, analysis_dir, volume, written_labels, corrected,
                                          expected_identity=expected_identity, target=target)
        session = open_review(self.scene, loaded, volume, folder.log,
                              SessionOptions(budget_slices=budget_slices, target=target, front_end=self.front_end,
                                             read_only=read_only, lock=lock))
        self.analysis, self.overlays, self.folder = loaded.analysis, dict(loaded.overlays), folder
        self._take(session)
        if session.current_rank >= 0:
            session.go_to(session.current_rank)
        elif show_first:
            self.act("next")
        return session

    def resume(self) -> ReviewSession:
        """The review a reopened scene holds, brought up to date with its review folder, with its overlays and
        reference, shown where the reviewer stopped."""
        from .review_workflow import resume_review_from_scene

        self.close()
        session, self.analysis = resume_review_from_scene(self.scene, front_end=self.front_end)
        self.overlays = scene_overlays(session.table)
        self.folder = ReviewFolder(session.log.path.parent)
        self._take(session)
        reference = session.table.GetNodeReference(ROLE_REFERENCE_SEGMENTATION)
        if reference is not None:
            self.set_reference(reference)
        if session.current_rank >= 0:
            session.go_to(session.current_rank)
        return session

    def _take(self, session: ReviewSession) -> ReviewSession:
        self.session, self.volume, self.segmentation = session, session.volume, session.segmentation
        session.on_dirty = self._edit_happened
        session.on_logged = self.on_logged
        for kind, node in self.overlays.items():
            session.table.SetNodeReferenceID(ROLE_OVERLAY + kind, node.GetID())
        return session

    def close(self) -> None:
        """End the session (its last edits saved and logged) and forget every node it held: the nodes stay in the
        scene, but after File > Close Scene their IDs come back for other nodes."""
        if self.session is not None:
            self.session.close()
        self.session = self.analysis = self.volume = self.segmentation = None
        self.reference = None  # the reference segmentation node chosen for the measured Dice (set_reference)
        self.folder: Optional[ReviewFolder] = None
        self.overlays: dict[str, object] = {}

    # -- edits ------------------------------------------------------------------------------------
    def _edit_happened(self) -> None:
        """The session saw an edit: account for it once the current event is over (once per event)."""
        if self.schedule is None or self._accounting_scheduled:
            return
        self._accounting_scheduled = True

        def account() -> None:
            self._accounting_scheduled = False
            self.flush()

        self.schedule(account)

    def flush(self) -> None:
        """Account for pending edits (saved, then logged)."""
        if self.session is not None:
            self.session.flush_edits()

    # -- review target ----------------------------------------------------------------------------
    def targets(self) -> list[str]:
        """Structures of the model the review can rank for, the default (all foreground) first."""
        from .review_workflow import review_targets

        return review_targets(self.analysis) if self.analysis is not None else []

    def set_target(self, target: str) -> None:
        """Rank the slices for another structure: the log records the change and keeps the progress per slice;
        the impact overlay follows the target."""
        from .review_workflow import AnalysisInScene, open_review, show_target_impact

        session = self.session
        if session is None or not target or target == session.target:
            return
        reference = session.reference_segmentation
        session.close()  # accounts pending edits, stops observing
        loaded = AnalysisInScene(session.segmentation, labels=session.label_values, analysis=self.analysis)
        session = open_review(self.scene, loaded, self.volume, session.log.path,
                              SessionOptions(target=target, front_end=self.front_end, read_only=session.read_only))
        session.reference_segmentation = reference
        self._take(session)
        if "impact" in self.overlays:
            show_target_impact(self.overlays["impact"], self.analysis, session.target)

    def scene_about_to_close(self) -> None:
        """File > Close Scene: save what is pending, then forget every node (their IDs come back after Clear())
        and count the close (volumes_by_id); a review the next scene holds may be tried again."""
        self.close()
        self.scene_closes += 1
        self._unresumable = None

    # -- review -----------------------------------------------------------------------------------
    def act(self, action: str) -> None:
        """One of ACTIONS by name; at either end of the ranking it stays. Without a session it does nothing."""
        if self.session is None or action not in {a.name for a in ACTIONS}:
            return
        with suppress(IndexError):
            getattr(self.session, action)()

    def key(self, key: str) -> None:
        """The action of a shortcut key (SHORTCUTS); other keys do nothing."""
        if key in SHORTCUTS:
            self.act(SHORTCUTS[key])

    def go_to(self, rank_index: int) -> None:
        """Show the slice at `rank_index` (0-based: a row of the ranking); outside the ranking nothing happens."""
        if self.session is not None:
            with suppress(IndexError):
                self.session.go_to(rank_index)

    def progress(self) -> ReviewProgress:
        """Budget, status, the slice the Red view shows and the ranking's rows; empty without a session."""
        session = self.session
        if session is None:
            return ReviewProgress()
        summary = session.log.summary()
        budget = summary.budget_slices or len(session.ranking)  # logged when it started, by whichever front end
        rank, red = session.current_rank, red_node(self.scene)
        return ReviewProgress(
            slices_corrected=summary.slices_corrected, budget_slices=budget, budget_text=budget_text(summary, budget),
            status_text=f"Rank {rank + 1} of {len(session.ranking)}: slice {session.ranking[rank]}" if rank >= 0 else "",
            rank=rank + 1, view_slice=slice_index_of_view(red, session.volume, session.axis) if red else -1,
            target=session.target, rows=tuple(session.navigation.rows()))

    def show_overlay(self, kind: str, opacity: float) -> None:
        """The heatmap `kind` over the reviewed volume in every slice view."""
        from .analysis_nodes import show_as_foreground

        if self.volume is not None and kind in self.overlays:
            show_as_foreground(self.scene, self.volume, self.overlays[kind], opacity)

    def set_reference(self, reference_segmentation) -> str:
        """Use a reference segmentation for the measured Dice (kept with the scene); returns the line to show."""
        from .analysis_nodes import reference_mask_on_volume

        if self.session is None:
            return ""
        if reference_segmentation is None:
            self.session.reference_segmentation = self.reference = None
            self.session.table.RemoveNodeReferenceIDs(ROLE_REFERENCE_SEGMENTATION)
            return ""
        try:
            self.session.reference_segmentation = reference_mask_on_volume(reference_segmentation, self.volume)
        except ValueError as exc:
            return str(exc)
        self.session.table.SetNodeReferenceID(ROLE_REFERENCE_SEGMENTATION, reference_segmentation.GetID())
        self.reference = reference_segmentation
        return (f"All-foreground Dice against the reference: {self.session.measured_foreground_dice():.3f} "
                "(all segments together; the reference resampled onto the input's grid)")

    def export_report(self) -> Path:
        """review_report.md, review_log.csv and review_curve.png beside the session's budget log."""
        from ..errors import BadInputError
        from ..review.report import write_review_report

        if self.session is None:
            raise BadInputError("No review session yet: analyse a case first.")
        self.flush()
        return Path(write_review_report(self.session.log.path))

    def export_training_dataset(self, parent_folder: str | os.PathLike, model_path: Optional[str] = None) -> str:
        """Every corrected review beside this one (its parent folder) as a new nnU-Net dataset in `parent_folder`."""
        from ..errors import BadInputError
        from ..review.corrected_dataset import export_reviews, next_dataset_folder

        if self.folder is None:
            raise BadInputError("No review yet: analyse a case first.")
        self.flush()
        result = export_reviews([self.folder.root.parent], next_dataset_folder(parent_folder), model_path=model_path)
        return f"{len(result.cases)} corrected case(s) written to {result.dataset}"


def volumes_by_id(controller: ReviewController, volume_ids: list[str], scene_closes: int) -> list:
    """The volumes an analysis started on (their node IDs and the scene_closes count then), if the scene still
    holds them; after a scene close (their IDs may name other volumes now) or a deletion, one clear line."""
    from ..errors import BadInputError

    volumes = [controller.scene.GetNodeByID(volume_id) for volume_id in volume_ids]
    if scene_closes != controller.scene_closes or not volumes or any(v is None for v in volumes):
        raise BadInputError("The analysed volumes are no longer in the scene (it was closed, or they were "
                            "deleted): load the case and press Analyse; the analysis written is reused.")
    return volumes


def analysis_inputs(controller: ReviewController, volumes: list, model) -> dict:
    """What the review opened after an analysis of `volumes` with the opened `model` needs, taken when the
    analysis starts (the panel and the scene may change while it runs): keyword arguments of open_analysed
    (and of cli.analysis_process.AnalysisRun, which keeps them). The volumes' identity is hashed here, once."""
    from .review_workflow import identity_of_volumes

    return {"opened_model": model, "volume_ids": [volume.GetID() for volume in volumes],
            "scene_closes": controller.scene_closes, "identity": identity_of_volumes(volumes, model)}


def reuses_analysis(review_folder: str | os.PathLike, identity: dict, calibration: str = "") -> bool:
    """Whether Analyse opens the review folder's analysis as it is (True) or runs the analysis (False), for the
    case and model of `identity` (analysis_inputs) and the calibration field (empty: the default, the file saved for
    the model). The calibration file is checked here, before any child starts; an analysis of another case or
    model is refused (one line), and one made with another calibration than an explicit one is analysed again
    unless a review has begun on it (then refused): data/calibration.keep_saved_analysis."""
    from ..data.analysis_identity import check_analysis_folder
    from ..data.calibration import keep_saved_analysis, resolve_calibration

    folder, option = ReviewFolder(review_folder), str(calibration or "").strip() or None
    resolved = resolve_calibration(option, identity["model"])
    if not folder.has_analysis():
        return False
    summary = check_analysis_folder(folder.analysis, identity["inputs"], identity["model"])
    return keep_saved_analysis(summary, option, resolved, replaceable=not folder.log.is_file(), where=folder.analysis)


def prepare_analysis(controller: ReviewController, volumes: list, chosen_folder: str, model_path: str,
                     calibration: str = "") -> tuple[str, dict, bool]:
    """What Analyse decides before anything runs: the volumes checked, the review folder (the chosen one, else the
    volume's default), the model opened, analysis_inputs taken, and whether the folder's analysis is opened as it
    is (reuses_analysis; False: the analysis runs). One clear line for anything wrong."""
    from ..nnunet.model_folder import open_model

    require_volumes(volumes)
    folder, _ = review_folder_of(chosen_folder, volumes[0].GetName())
    inputs = analysis_inputs(controller, volumes, open_model(model_path))
    return folder, inputs, reuses_analysis(folder, inputs["identity"], calibration)


def open_analysed(controller: ReviewController, review_folder: str | os.PathLike, opened_model, volume_ids: list[str],
                  scene_closes: int, identity: dict) -> ReviewSession:
    """open_case on the volumes and model of analysis_inputs, on its first slice; one clear line (BadInputError)
    when the volumes are no longer in the scene."""
    volumes = volumes_by_id(controller, volume_ids, scene_closes)
    return controller.open_case(review_folder, volumes[0], opened_model.written_labels, identity, show_first=True)
