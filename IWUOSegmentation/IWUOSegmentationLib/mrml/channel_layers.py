"""Which of the model's input channels the slice views show under the heatmap and the segmentation.

The reviewed volume (the model's first channel) carries the analysis, the ranking and the edits; the other
channels are there to be looked at: a reviewer corrects tumour core and enhancing tumour on T1c, oedema on
FLAIR. Only the slice views' background layer changes: the heatmap stays the foreground layer and the
segmentation is drawn above both, so the overlay and the corrections stay on top whichever channel is shown.
"""

from __future__ import annotations

from typing import Optional

#: The key that shows the next channel (both front ends bind it beside the review's N, P, S, D).
CHANNEL_KEY = "c"


def _composites(scene) -> list:
    return [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]


def show_background(scene, volume) -> int:
    """`volume` as the background layer of every slice view (foreground, opacity and label layer kept);
    returns the views changed."""
    composites = _composites(scene)
    for composite in composites:
        composite.SetBackgroundVolumeID(volume.GetID())
    return len(composites)


def plane_centre(slice_node) -> tuple[float, float, float]:
    """The RAS centre of a slice view's plane (for the review view: the ranked slice's centre)."""
    to_ras = slice_node.GetSliceToRAS()
    return to_ras.GetElement(0, 3), to_ras.GetElement(1, 3), to_ras.GetElement(2, 3)


def centre_views_on(scene, centre: tuple[float, float, float]) -> None:
    """Every slice view centred on `centre`, each keeping its orientation: after a layout change has refitted the
    views, the review view shows the ranked slice again and the others its neighbourhood."""
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
        scene.GetNthNodeByClass(i, "vtkMRMLSliceNode").JumpSliceByCentering(*centre)


class ChannelLayers:
    """The case's channel volumes by name, in the model's channel order, and the one shown as background."""

    def __init__(self, scene, volumes: dict[str, object]):
        if not volumes:
            raise ValueError("A review shows at least one channel.")
        self.scene, self.volumes = scene, dict(volumes)
        self.shown = next(iter(self.volumes))

    @property
    def names(self) -> list[str]:
        return list(self.volumes)

    def show(self, name: Optional[str] = None) -> str:
        """Show channel `name` (None: the one shown, again, e.g. after views were added or an overlay reset the
        background); an unknown name changes nothing. Returns the channel shown."""
        if name in self.volumes:
            self.shown = name
        show_background(self.scene, self.volumes[self.shown])
        return self.shown

    def cycle(self) -> str:
        """Show the next channel (after the last, the first again)."""
        names = self.names
        return self.show(names[(names.index(self.shown) + 1) % len(names)])
