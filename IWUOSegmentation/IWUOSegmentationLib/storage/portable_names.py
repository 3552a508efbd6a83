"""A name that is one valid folder on Windows, macOS and Linux, made from any text (a volume's name).

Why: Slicer names DICOM-loaded volumes "<SeriesNumber>: <SeriesDescription>" (DICOMLib/DICOMPlugin.py), and
the desktop review folder is named after the volume: the ":" makes mkdir fail on Windows, and a "/" in a
series description nests folders on every system. The rules are Microsoft's ("Naming Files, Paths, and
Namespaces"): no <>:"/\\|?* and no control characters, no trailing dot or space, none of the device names
(CON, PRN, AUX, NUL, COM0-9, LPT0-9, also with an extension), and a short name, so that the analysis files
inside stay under Windows' 260-character path limit; POSIX adds only that "/" and NUL are not allowed.
"""

from __future__ import annotations

import re

#: Longest folder name made, in characters (at most 240 UTF-8 bytes: POSIX allows 255); the review's files add
#: about 60 characters below it.
MAX_FOLDER_NAME = 60
#: What an empty or all-invalid name becomes.
FALLBACK_NAME = "volume"
_INVALID = re.compile(r'[<>:"/\\|?*\x00-\x1f]+')
_DEVICE_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10)),
                           *(f"{port}{digit}" for port in ("COM", "LPT") for digit in "\u00b9\u00b2\u00b3")})


def _is_device_name(name: str) -> bool:
    """Windows reserves the device names with any extension too (NUL.txt is NUL); case and trailing spaces ignored."""
    return name.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES


def portable_folder_name(text: str, max_length: int = MAX_FOLDER_NAME) -> str:
    """`text` as one folder name valid on Windows and POSIX: each run of reserved or control characters becomes
    "_", surrounding spaces and trailing dots go, a device name gets "_" after its stem (CON.x -> CON_.x), at
    most `max_length` characters; FALLBACK_NAME when nothing is left."""
    name = _INVALID.sub("_", text.encode("utf-8", "replace").decode("utf-8"))  # lone surrogates cannot be written
    name = name[:max_length].strip(" ").rstrip(". ")
    if _is_device_name(name):
        stem, dot, rest = name.partition(".")
        name = f"{stem.rstrip(' ')}_{dot}{rest}"[:max_length].rstrip(". ")
    return name or FALLBACK_NAME
