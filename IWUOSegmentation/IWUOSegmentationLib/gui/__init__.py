"""GUI layer helpers: may import slicer and qt; only IWUOSegmentation.py uses them."""
