"""What the Slicer module needs from the 3D Slicer that hosts it, decided in plain Python (no slicer, no qt):
the minimum Slicer version, the Python packages it may install and the ones it must never replace, and the
order in which Reload reloads this library. The module file only calls these."""
