"""A Slicer MRML scene with the module logics Slicer's app would create, for use without the app.

Why: on the `slicer-core` wheel (tests, headless batch, the browser front end) there is no
`slicer.app`, `slicer.mrmlScene` or `slicer.modules`; `slicer.util`'s array helpers read the
last two. Inside the Slicer application this is never called: the app's own scene is used.
"""

from __future__ import annotations

import types


def create_headless_scene():
    """Build a scene + application logic + colour/volumes/segmentations logics; return the scene."""
    import slicer
    import vtk

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", color_logic)
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())
    volumes_logic = slicer.vtkSlicerVolumesLogic()
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    for name, logic in (("Volumes", volumes_logic), ("Segmentations", segmentations_logic)):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(name, logic)
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: segmentations_logic),
        volumes=types.SimpleNamespace(logic=lambda: volumes_logic))
    # Keep the logics alive as long as the scene (VTK would otherwise free them).
    scene._iwuo_logics = (app_logic, color_logic, volumes_logic, segmentations_logic)
    return scene
