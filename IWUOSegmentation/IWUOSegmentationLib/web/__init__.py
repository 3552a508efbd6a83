"""Browser front end (trame-slicer) of the guided review; a GUI layer over `mrml`."""
