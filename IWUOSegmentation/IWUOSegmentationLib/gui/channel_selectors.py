"""One volume selector per model channel in the Inputs form (GUI layer), preselected by name
(mrml.review_controller.match_volume)."""

import qt
import slicer


def replace_channel_selectors(form_layout, previous: list, channels: list[str]) -> list:
    """Remove the `previous` (label, selector) rows from `form_layout`; add one row per channel; return them."""
    from ..mrml.review_controller import match_volume

    for label, _selector in previous:
        form_layout.removeRow(label)
    rows = [(qt.QLabel(f"{channel}:"), slicer.qMRMLNodeComboBox()) for channel in channels]
    for channel, (label, selector) in zip(channels, rows):
        selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
        selector.noneEnabled, selector.addEnabled, selector.removeEnabled = True, False, False
        selector.setMRMLScene(slicer.mrmlScene)
        selector.setCurrentNode(match_volume(slicer.mrmlScene, channel))
        form_layout.addRow(label, selector)
    return rows
