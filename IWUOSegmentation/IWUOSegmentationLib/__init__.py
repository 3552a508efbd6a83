"""IWUOSegmentation core library: pure Python (no slicer, no qt) unless a module says otherwise."""

__version__ = "0.1.0"
