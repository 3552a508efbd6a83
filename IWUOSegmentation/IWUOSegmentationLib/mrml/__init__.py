"""MRML layer: imports Slicer's MRML classes and slicer.util array helpers, never qt."""
