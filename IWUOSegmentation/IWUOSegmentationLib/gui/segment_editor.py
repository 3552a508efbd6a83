"""The module's embedded segment editor: its own node, and letting go of the views (GUI layer), as Slicer's
Segment Editor module does in selectParameterNode(), exit() and onSceneStartClose()
(Modules/Scripted/SegmentEditor/SegmentEditor.py)."""


def select_node(editor, scene) -> None:
    """The module's own segment editor node (mrml.review_controller.segment_editor_node) on `editor`."""
    from ..mrml.review_controller import segment_editor_node

    editor.setMRMLSegmentEditorNode(segment_editor_node(scene))


def deactivate(editor) -> None:
    """No active effect and no view observations: strokes in the views no longer reach the segmentation."""
    editor.setActiveEffect(None)
    editor.removeViewObservations()


def let_go(editor) -> None:
    """No segmentation and no view observations (the scene is closing: its nodes go)."""
    editor.setSegmentationNode(None)
    editor.removeViewObservations()


def detach(editor) -> None:
    """deactivate, let go, and no segment editor node: cleanup before Reload, so that the reloaded module's
    editor is the only one connected to the module's segment editor node and to the views."""
    deactivate(editor)
    let_go(editor)
    editor.setMRMLSegmentEditorNode(None)
