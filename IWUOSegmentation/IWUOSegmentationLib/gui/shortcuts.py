"""The review's keyboard shortcuts on the main window, installed in enter() and removed in exit() (GUI layer).

As Slicer's Segment Editor module does with its editor's shortcuts: outside the module the keys
must not log skips or corrections, and a reloaded module must not leave old shortcuts behind.
"""

import qt
import slicer


def install_shortcuts(on_action, previous: list) -> list:
    """One QShortcut per review action (mrml.review_controller.ACTIONS), replacing `previous`; none with
    --no-main-window."""
    from ..mrml.review_controller import ACTIONS

    remove_shortcuts(previous)
    main_window = slicer.util.mainWindow()
    shortcuts = []
    for action in ACTIONS if main_window is not None else ():
        shortcut = qt.QShortcut(qt.QKeySequence(action.key), main_window)
        shortcut.connect("activated()", lambda name=action.name: on_action(name))
        shortcuts.append(shortcut)
    return shortcuts


def remove_shortcuts(shortcuts: list) -> list:
    """Disconnect and delete `shortcuts`; returns the empty list to keep."""
    for shortcut in shortcuts:
        shortcut.disconnect("activated()")
        shortcut.setParent(None)
    return []
