"""Browser front end of the guided review: a trame-slicer app on the shared MRML layer.

The Slicer MRML scene, slice views and Segment Editor effects are trame-slicer's (rendered on
the server, streamed to the page). Everything the review does goes through the review controller
(`mrml.review_controller.ReviewController`) — the one the desktop module calls — so the BudgetLog and
the saved corrections are the desktop module's too; the app never touches the session itself.

Kept responsive on a software renderer (Mesa llvmpipe, 2 cores; benchmarks/bench_web_review.py): a slice view is
rendered once per change, at one JPEG quality and at most RENDER_PIXELS pixels (the browser scales the image to
the view), only the views of the layout shown exist, and the page is sent what changed (the rank, a status
column), not the whole ranking on every Next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import types
from typing import Callable, Optional

from ..mrml.channel_layers import CHANNEL_KEY, ChannelLayers, centre_views_on, plane_centre
from ..mrml.review_controller import ACTIONS, SHORTCUTS, ReviewController, red_node
from ..mrml.review_workflow import OVERLAY_KINDS, add_volume_from_image
from ..review.budget_log import DEFAULT_BUDGET_SLICES
from ..review.preparation import BROWSER_FRONT_END, ReviewCase

log = logging.getLogger("iwuo.review")

#: Segment Editor effects offered, first the ones a correction needs.
EFFECTS = ("Paint", "Erase", "Draw", "Scissors")
#: The page's keys: the review's shortcuts (N, P, S, D) and the channel key (C).
PAGE_KEYS = "".join(SHORTCUTS) + CHANNEL_KEY
KEY_SCRIPT = f"""
document.addEventListener('keydown', (event) => {{
  const tag = (event.target && event.target.tagName) || '';
  if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
  if (window.trame && '{PAGE_KEYS}'.includes(event.key)) window.trame.trigger('iwuo_key', [event.key]);
}});
"""
#: Most pixels a slice view is rendered with: llvmpipe's time grows with them, and a 240-voxel slice shown in a
#: ~1000-pixel view gains nothing visible above ~2 rendered pixels per voxel (the browser scales the image up).
RENDER_PIXELS = 150_000
#: One JPEG quality while moving and at rest: trame-rca renders a still frame again when they differ.
JPEG_QUALITY = 85
#: The layouts offered: the review view alone, or with the two other planes through the ranked slice's centre.
ONE_VIEW, THREE_VIEWS = "one view", "three views"


def _adopt_scene(slicer_app) -> None:
    """Point `slicer.util`'s array helpers at trame-slicer's scene and logics (as in headless_scene)."""
    import slicer

    slicer.mrmlScene = slicer_app.scene
    slicer.modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: slicer_app.segmentations_logic),
        volumes=types.SimpleNamespace(logic=lambda: slicer_app.volumes_logic))


def _register_slice_views(view_manager, server) -> None:
    """trame-slicer's remote slice views, each rendered once per change (one JPEG quality) at most RENDER_PIXELS."""
    from trame_slicer.app.ui import create_vertical_slice_view_gutter_ui
    from trame_slicer.rca_view import RemoteSliceViewFactory

    class ReviewSliceViews(RemoteSliceViewFactory):
        def _create_view(self, view, scene, app_logic):
            created = super()._create_view(view, scene, app_logic)
            created.view_adapter.update_quality(JPEG_QUALITY, JPEG_QUALITY)
            created.view_adapter.max_pixel_count = RENDER_PIXELS
            return created

    view_manager.register_factory(ReviewSliceViews(server, populate_view_ui_f=create_vertical_slice_view_gutter_ui))


def _layouts() -> dict:
    from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

    red = ViewLayoutDefinition.axial_view()
    return {ONE_VIEW: Layout(LayoutDirection.Vertical, [red]),
            THREE_VIEWS: Layout(LayoutDirection.Horizontal, [red, Layout(LayoutDirection.Vertical, [
                ViewLayoutDefinition.coronal_view(), ViewLayoutDefinition.sagittal_view()])], flex_sizes=["2", "1"])}


class ReviewApp:
    """One case under review in the browser; owns the trame server, the scene and the review controller."""

    def __init__(self, case: ReviewCase, server=None, budget_slices: int = DEFAULT_BUDGET_SLICES):
        if not os.environ.get("DISPLAY"):
            os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp

        self.case = case
        self.server = server or get_server(None, client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.slicer_app = SlicerApp()
        _adopt_scene(self.slicer_app)
        _register_slice_views(self.slicer_app.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        # the views of a layout are made when it is first shown (the one-view layout: the review view only)
        self.layout_manager.register_layout_dict(_layouts(), lazy_initialization=True)
        self.layout_manager.set_layout(ONE_VIEW)
        self.layout_manager.create_layout_views_if_needed(ONE_VIEW)  # made here: inside the page's build, a view
        # made by the layout grid would also be placed in the page a second time
        self.controller = ReviewController(self.slicer_app.scene, schedule=self._after_current_event,
                                           front_end=BROWSER_FRONT_END, on_logged=self._publish_budget)
        self.channels: Optional[ChannelLayers] = None
        self._published: dict = {}  # what the page was last sent, so only changes are sent
        self._fitted_on_resize: set[str] = set()  # the views refitted when the page resizes them
        # The layout's views exist before any data is loaded: trame-slicer's brush effects are known to fail
        # when a volume comes first (the end-to-end test paints after this order).
        self._build_ui()
        self._load(budget_slices)
        self._fit_views_when_resized()
        self.server.controller.on_client_exited.add(self.save_now)
        self.server.controller.on_server_exited.add(self.save_now)

    # -- data -------------------------------------------------------------------------------------
    def _load(self, budget_slices: int) -> None:
        case = self.case
        volumes = {name: add_volume_from_image(image, name) for name, image in zip(case.channel_names, case.images)}
        volume = volumes[case.channel_names[0]]  # the reviewed volume: the analysis is on its grid
        self.channels = ChannelLayers(self.slicer_app.scene, volumes)
        self.channels.show()
        # views reset first: the session then centres them on the slice where the log says the reviewer stopped
        self.slicer_app.display_manager.reset_views()
        self.controller.open_case(case.folder.root, volume, case.written_labels, case.identity,
                                  analysis_dir=case.analysis_dir, budget_slices=budget_slices, target=case.target,
                                  read_only=case.read_only, lock=case.lock)
        self.state.iwuo_targets = self.controller.targets()
        self.state.iwuo_channels = self.channels.names
        self.slicer_app.segmentation_editor.set_active_segmentation(self.controller.segmentation, volume)
        if case.read_only:
            self.state.iwuo_message = "Read-only: another session holds this review; edits are not kept."
        self._set_overlay(self.state.iwuo_map, self.state.iwuo_opacity)
        self._publish()

    @property
    def state(self):
        return self.server.state

    def _set_overlay(self, name: str, opacity: float) -> None:
        self.controller.show_overlay(name, float(opacity))
        if self.channels is not None:
            self.channels.show()  # the overlay is shown over the reviewed volume: the chosen channel back under it
        self._publish_layers()

    def _red(self, node_class: str):
        """The Red view's slice or composite node (what the page shows is read back from these)."""
        return red_node(self.slicer_app.scene, node_class)

    def _layer_name(self, role: str) -> Optional[str]:
        """The name of the volume in the Red view's background or foreground layer, None when there is none."""
        composite = self._red("vtkMRMLSliceCompositeNode")
        volume_id = getattr(composite, f"Get{role}VolumeID")() if composite else None
        node = self.slicer_app.scene.GetNodeByID(volume_id or "")
        return node.GetName() if node else None

    def _publish_layers(self) -> None:
        """What the Red view shows, read back from its composite node: the background channel and the overlay."""
        composite, foreground = self._red("vtkMRMLSliceCompositeNode"), self._layer_name("Foreground")
        with self.state:
            self.state.iwuo_background = self._layer_name("Background") or "none"
            self.state.iwuo_foreground = f"{foreground} @ {composite.GetForegroundOpacity():.2f}" if foreground else "none"

    def _send(self, **values) -> None:
        """Set the page's state variables whose values changed since they were last sent (the others are not sent)."""
        changed = {key: value for key, value in values.items() if self._published.get(key) != value}
        self._published.update(changed)
        self.state.update(changed)

    def _publish(self) -> None:
        """Copy the review's progress into the page state: the ranked slices (sent when the ranking changes), their
        statuses (when one changes), the rank, the Red view's actual slice, the budget."""
        progress = self.controller.progress()
        rows = [{"rank": row["rank"], "slice": row["slice"], "score": f"{row['iwuo']:.4f}"}
                for row in progress.rows]  # the score shown: the ranking's own
        with self.state:
            self._send(iwuo_rows=rows, iwuo_status=[row["status"] for row in progress.rows],
                       iwuo_current_rank=progress.rank, iwuo_view_slice=progress.view_slice,
                       iwuo_target=progress.target)
            self._publish_budget(progress=progress)

    def _publish_budget(self, _event: Optional[dict] = None, progress=None) -> None:
        """The budget bar and text, from the log's events in memory: after each logged event (on_logged)."""
        progress = progress or self.controller.progress()
        with self.state:
            self._send(iwuo_slices_used=progress.slices_corrected, iwuo_budget=progress.budget_slices,
                       iwuo_budget_text=progress.budget_text)

    def _after_current_event(self, account: Callable[[], None]) -> None:
        """The controller's scheduler (asyncio's call_soon; at once when no loop runs, in scripted use): a stroke is
        accounted for (saved, then logged) once the event that made it is over, then shown."""
        def account_and_show() -> None:
            account()
            self._publish()

        try:
            asyncio.get_running_loop().call_soon(account_and_show)
        except RuntimeError:
            account_and_show()

    def save_now(self, **_) -> None:
        """Account for pending edits: saved segmentation, then log (browser gone, server stopping)."""
        self.controller.flush()

    # -- actions ----------------------------------------------------------------------------------
    def act(self, action: str) -> None:
        self.controller.act(action)  # past either end of the ranking: stays
        self._publish()

    def export_report(self) -> None:
        self.state.iwuo_message = f"Report written: {self.controller.export_report()}"

    def on_key(self, key: str) -> None:
        if key == CHANNEL_KEY:
            self.show_channel(None)
            return
        self.controller.key(key)
        self._publish()

    def show_channel(self, name: Optional[str]) -> None:
        """Show channel `name` under the overlay and the segmentation (None: the next one)."""
        if name is None:
            self.channels.cycle()
        else:
            self.channels.show(name)
        self.state.iwuo_channel = self.channels.shown
        self._publish_layers()

    def set_layout(self, three_views: bool) -> None:
        """The review view alone, or beside the two other planes through the ranked slice (views made once)."""
        self.layout_manager.set_layout(THREE_VIEWS if three_views else ONE_VIEW)
        self._set_overlay(self.state.iwuo_map, self.state.iwuo_opacity)  # views just made show nothing yet
        self._fit_views_when_resized()
        self._fit_views()
        self.state.iwuo_three_views = bool(three_views)

    def _fit_views_when_resized(self) -> None:
        """Refit the slice views whenever the page gives one a new size (a layout change, a resized window)."""
        from vtkmodules.vtkCommonCore import vtkCommand

        for view in self.slicer_app.view_manager.get_slice_views():
            if view.get_singleton_tag() not in self._fitted_on_resize:
                view.interactor().AddObserver(vtkCommand.WindowResizeEvent, self._fit_views)
                self._fitted_on_resize.add(view.get_singleton_tag())

    def _fit_views(self, *_) -> None:
        """Each slice view fitted to its size (orientation kept), all on the ranked slice again."""
        centre = plane_centre(self._red("vtkMRMLSliceNode"))
        for view in self.slicer_app.view_manager.get_slice_views():
            view.fit_view_to_content()
        centre_views_on(self.slicer_app.scene, centre)

    def set_target(self, target: str) -> None:
        """Rank the slices for another structure: the log records the change and keeps the progress per slice."""
        self.controller.set_target(target)
        self._publish()

    def go_to_rank(self, rank: int) -> None:
        self.controller.go_to(int(rank) - 1)
        self._publish()

    def set_effect(self, name: Optional[str]) -> None:
        from trame_slicer.segmentation import (
            SegmentationEffectDraw,
            SegmentationEffectErase,
            SegmentationEffectPaint,
            SegmentationEffectScissors,
        )

        effects = {"Paint": SegmentationEffectPaint, "Erase": SegmentationEffectErase,
                   "Draw": SegmentationEffectDraw, "Scissors": SegmentationEffectScissors}
        editor = self.slicer_app.segmentation_editor
        if name in effects:
            self._give_pipelines_their_views(editor.get_effect(effects[name]))
            editor.set_active_effect_type(effects[name])
        else:
            editor.deactivate_effect()
        self.state.iwuo_effect = name if name in effects else None

    def _give_pipelines_their_views(self, effect) -> None:
        """trame-slicer makes an effect's pipeline for a view as the view is made, before its view manager knows the
        view, when the effect was used before (the 3-view layout chosen after a Paint): that pipeline has no view,
        and activating the effect then raises on it. Each pipeline is given its view from the manager first."""
        views = self.slicer_app.view_manager
        for pipeline in (r() for r in effect.pipelines):
            if pipeline is not None and pipeline.GetViewNode() is not None:
                view = views.get_view(pipeline.GetViewNode())
                if view is not None:
                    pipeline.SetView(view)

    def set_segment(self, segment_id: str) -> None:
        self.slicer_app.segmentation_editor.set_active_segment_id(segment_id)
        self.state.iwuo_segment = segment_id

    # -- page -------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import VAppLayout
        from trame.widgets import client, html
        from trame.widgets import vuetify3 as v

        state, ctrl = self.server.state, self.server.controller
        state.trame__title = "IWUO review"
        state.iwuo_map = "entropy"
        state.iwuo_opacity = 0.4
        state.iwuo_effect = None
        state.iwuo_segment = None
        state.iwuo_segments = []
        state.iwuo_rows = []
        state.iwuo_status = []
        state.iwuo_channels = []
        state.iwuo_channel = self.case.channel_names[0]
        state.iwuo_background = state.iwuo_foreground = "none"
        state.iwuo_three_views = False
        state.iwuo_targets = []
        state.iwuo_target = None
        state.iwuo_case = self.case.name
        state.change("iwuo_map", "iwuo_opacity")(lambda iwuo_map, iwuo_opacity, **_: self._set_overlay(iwuo_map,
                                                                                                       iwuo_opacity))
        ctrl.trigger("iwuo_key")(self.on_key)
        ctrl.trigger("iwuo_action")(self.act)
        ctrl.trigger("iwuo_rank")(self.go_to_rank)
        ctrl.trigger("iwuo_effect")(self.set_effect)
        ctrl.trigger("iwuo_segment")(self.set_segment)
        ctrl.trigger("iwuo_report")(self.export_report)
        ctrl.trigger("iwuo_target")(self.set_target)
        ctrl.trigger("iwuo_channel")(self.show_channel)
        ctrl.trigger("iwuo_layout")(self.set_layout)
        state.iwuo_message = ""

        with VAppLayout(self.server, full_height=True) as self.layout:
            client.Script(KEY_SCRIPT)
            with v.VAppBar(density="compact"):
                v.VToolbarTitle("IWUO review · {{ iwuo_case }}")
                html.Div("{{ iwuo_budget_text }}", classes="mx-4 text-body-2", raw_attrs=['data-testid="budget-text"'])
            with v.VNavigationDrawer(permanent=True, width=380):
                with v.VContainer(classes="pa-2"):
                    v.VSelect(label="Review target", items=("iwuo_targets",), model_value=("iwuo_target",),
                              density="compact", hide_details=True, classes="mb-2",
                              update_modelValue="trigger('iwuo_target', [$event])",
                              raw_attrs=['data-testid="target-select"'])
                    v.VProgressLinear(model_value=("100 * iwuo_slices_used / Math.max(iwuo_budget, 1)",), height=8,
                                      color=("iwuo_slices_used >= iwuo_budget ? 'error' : 'primary'",), classes="mb-2",
                                      raw_attrs=['data-testid="budget-bar"'])
                    with html.Div(classes="d-flex flex-wrap ga-1 mb-2"):
                        for a in ACTIONS:
                            v.VBtn(f"{a.label} ({a.key})", size="small", click=f"trigger('iwuo_action', ['{a.name}'])",
                                   raw_attrs=[f'data-testid="btn-{a.name}"'])
                    html.Div("Rank {{ iwuo_current_rank }} · view on slice {{ iwuo_view_slice }}",
                             classes="text-body-2 mb-2", raw_attrs=['data-testid="view-slice"', ':data-rank="iwuo_current_rank"',
                                        ':data-slice="iwuo_view_slice"'])
                    with html.Div(classes="d-flex flex-wrap ga-1 mb-2"):
                        for name in EFFECTS:
                            v.VBtn(name, size="small", variant=(f"iwuo_effect === '{name}' ? 'flat' : 'outlined'",),
                                   color="secondary", click=f"trigger('iwuo_effect', ['{name}'])",
                                   raw_attrs=[f'data-testid="effect-{name.lower()}"'])
                        v.VBtn("None", size="small", variant="text", click="trigger('iwuo_effect', [null])",
                               raw_attrs=['data-testid="effect-none"'])
                    v.VSelect(label="Segment", items=("iwuo_segments",), item_title="name", item_value="id",
                              model_value=("iwuo_segment",), density="compact", hide_details=True, classes="mb-2",
                              update_modelValue="trigger('iwuo_segment', [$event])")
                    with html.Div(classes="d-flex align-center ga-2 mb-2"):
                        v.VSelect(label=f"Background ({CHANNEL_KEY.upper()})", items=("iwuo_channels",),
                                  model_value=("iwuo_channel",), density="compact", hide_details=True,
                                  update_modelValue="trigger('iwuo_channel', [$event])",
                                  raw_attrs=['data-testid="channel-select"'])
                        v.VCheckbox(label="3 views", model_value=("iwuo_three_views",), density="compact",
                                    hide_details=True, update_modelValue="trigger('iwuo_layout', [$event])",
                                    raw_attrs=['data-testid="three-views"'])
                    html.Div("Background: {{ iwuo_background }}", classes="text-caption mb-1",
                             raw_attrs=['data-testid="background"', ':data-background="iwuo_background"'])
                    v.VSelect(label="Heatmap", items=("iwuo_maps", list(OVERLAY_KINDS)), v_model=("iwuo_map",),
                              density="compact", hide_details=True, classes="mb-2", raw_attrs=['data-testid="map-select"'])
                    html.Div("Overlay: {{ iwuo_foreground }}", classes="text-caption mb-1",
                             raw_attrs=['data-testid="foreground"', ':data-foreground="iwuo_foreground"'])
                    v.VSlider(label="Opacity", v_model=("iwuo_opacity",), min=0, max=1, step=0.05, density="compact",
                              hide_details=True, classes="mb-2", raw_attrs=['data-testid="opacity"'])
                    with html.Div(classes="d-flex align-center ga-2 mb-2"):
                        v.VBtn("Export report", size="small", variant="tonal", click="trigger('iwuo_report')",
                               raw_attrs=['data-testid="btn-report"'])
                        html.Div("{{ iwuo_message }}", classes="text-caption", style="word-break: break-all;",
                                 raw_attrs=['data-testid="message"'])
                    with v.VTable(density="compact", height=360, fixed_header=True, raw_attrs=['data-testid="ranking"']):
                        with html.Thead():
                            with html.Tr():
                                for head in ("rank", "slice", "IWUO", "status"):
                                    html.Th(head)
                        with html.Tbody():
                            with html.Tr(v_for="row in iwuo_rows", key="row.rank",
                                         click="trigger('iwuo_rank', [row.rank])", style="cursor: pointer",
                                         classes=("{'bg-primary': row.rank === iwuo_current_rank}",)):
                                html.Td("{{ row.rank }}")
                                html.Td("{{ row.slice }}")
                                html.Td("{{ row.score }}")
                                html.Td("{{ iwuo_status[row.rank - 1] }}")
            # the views fill what the app bar and the panel leave (rendered pixels hidden under them would be wasted)
            with v.VMain(), html.Div(style="position: absolute; top: var(--v-layout-top); left: var(--v-layout-left); "
                                           "right: 0; bottom: 0;", raw_attrs=['data-testid="views"']):
                self.layout_manager.initialize_layout_grid(self.layout)

    def publish_segments(self) -> None:
        editor = self.slicer_app.segmentation_editor
        with self.state:
            self.state.iwuo_segments = [{"id": sid, "name": props.name}
                                        for sid, props in editor.get_all_segment_properties().items()]
            self.state.iwuo_segment = editor.get_active_segment_id()

    def render_backend(self) -> str:
        """Which VTK render window draws the views (EGL on Mesa when there is no display)."""
        views = self.slicer_app.view_manager.get_slice_views()
        return views[0].render_window().GetClassName() if views else "no view"

    def start(self, port: int, host: str = "127.0.0.1", **kwargs) -> None:
        self.publish_segments()
        print(f"IWUO review: slice views rendered by {self.render_backend()}", flush=True)
        print(f"IWUO review of {self.case.name}: open http://{host}:{port}/ (log: {self.case.folder.log})",
              flush=True)
        self.server.start(port=port, host=host, open_browser=False, show_connection_info=False, **kwargs)


def run_review(case: ReviewCase, port: int, host: str = "127.0.0.1", budget_slices: int = DEFAULT_BUDGET_SLICES) -> None:
    """Serve the review of `case` (its `target` is the structure ranked first; the page can change it)."""
    ReviewApp(case, budget_slices=budget_slices).start(port, host=host)

