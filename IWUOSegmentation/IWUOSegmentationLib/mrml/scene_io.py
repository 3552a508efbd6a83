"""Save a scene with its data (volumes, segmentations, tables) and reopen it, without slicer.app.

Inside Slicer the application's own "Save" does this; on slicer-core (tests, headless batch,
the browser front end) each storable node's data is written through its storage node next to
the .mrml file, then the scene is committed.
"""

from __future__ import annotations

import re
from pathlib import Path


def save_scene(scene, mrml_path: str) -> Path:
    """Write every storable node's data into `<scene>_data/` and the scene to `mrml_path`."""
    path = Path(mrml_path)
    data_dir = path.with_name(f"{path.stem}_data")
    data_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLStorableNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLStorableNode")
        if not node.GetSaveWithScene() or (node.IsA("vtkMRMLColorNode") and node.GetAttribute("Category") is None):
            continue  # built-in colour tables are recreated by Slicer itself
        if node.GetStorageNode() is None and not node.AddDefaultStorageNode():
            continue
        storage = node.GetStorageNode()
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.GetName()) or node.GetID()
        while stem in used:
            stem += "_"
        used.add(stem)
        storage.SetFileName(str(data_dir / f"{stem}.{storage.GetDefaultWriteFileExtension()}"))
        if not storage.WriteData(node):
            raise OSError(f"Could not write the data of {node.GetName()} to {storage.GetFileName()}")
    scene.SetURL(str(path))
    if not scene.Commit():
        raise OSError(f"Could not write the scene file {path}")
    return path


def load_scene(scene, mrml_path: str) -> None:
    """Import a saved scene (nodes and their data) into `scene`."""
    if not Path(mrml_path).is_file():
        raise FileNotFoundError(f"Scene file {mrml_path} does not exist.")
    scene.SetURL(str(mrml_path))
    if not scene.Import():
        raise OSError(f"Could not read the scene file {mrml_path}")
