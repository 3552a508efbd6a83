"""Install the Python packages the analysis needs into Slicer's Python, after asking (GUI layer).

torch comes from Slicer's PyTorch extension (the right CPU/CUDA build for the machine); the rest
through `slicer.packaging.pip_ensure` (Slicer >= 5.12; `slicer.packaging` is not imported by
`import slicer`, so it is imported here) or `slicer.util.pip_install` on older Slicer. Slicer's
own numpy, scipy and SimpleITK are never replaced: they are not requested, and nnU-Net's
dependency on SimpleITK and torch is skipped (5.12+) or pinned to the installed versions.
Nothing is installed in testing mode. Errors come back as one line for the panel, not tracebacks.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile

#: import name -> pip requirement (Slicer ships numpy, scipy and SimpleITK: never listed here)
REQUIREMENTS = {
    "nnunetv2": "nnunetv2>=2.5",
    "matplotlib": "matplotlib>=3.7",
    "nilearn": "nilearn>=0.10",
}
#: Never installed or upgraded as a dependency of the above: Slicer's own builds.
KEEP = ("SimpleITK", "torch")


def missing_requirements() -> list[str]:
    """pip requirements whose packages cannot be imported (torch excluded)."""
    return [req for module, req in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


def _pinned_constraints() -> str:
    """A pip constraints file holding Slicer's SimpleITK and torch at their installed versions."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in KEEP:
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    handle, path = tempfile.mkstemp(prefix="iwuo_constraints_", suffix=".txt")
    with os.fdopen(handle, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class MissingDependencies(RuntimeError):
    """What the analysis needs is not importable (declined, testing mode, no PyTorch extension, failed install)."""


def ensure_dependencies(confirm) -> None:
    """Make torch and the requirements importable, or raise MissingDependencies with the reason in one line;
    `confirm(text) -> bool` asks the user."""
    ok, why = _ensure(confirm)
    if not ok:
        raise MissingDependencies(why)


def _ensure(confirm) -> tuple[bool, str]:
    import slicer

    testing = bool(slicer.app.testingEnabled())
    if importlib.util.find_spec("torch") is None:
        if testing:
            return False, "PyTorch is not installed (nothing is installed in testing mode)."
        if not confirm("IWUOSegmentation needs PyTorch. Install it now with the PyTorch extension?"):
            return False, "PyTorch is needed to analyse a case."
        try:
            import PyTorchUtils
        except ImportError:
            return False, ("The PyTorch extension is not installed: install 'PyTorch' from the Extensions Manager, "
                           "restart Slicer, and try again.")
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            return False, "PyTorch could not be installed."
    missing = missing_requirements()
    if not missing:
        return True, ""
    if testing:
        return False, f"Missing Python packages (nothing is installed in testing mode): {', '.join(missing)}"
    try:
        import slicer.packaging as packaging
    except ImportError:  # Slicer < 5.12
        packaging = None
    try:
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(missing, skip_packages=list(KEEP), requester="IWUOSegmentation")
        else:
            if not confirm("IWUOSegmentation needs these Python packages:\n" + "\n".join(missing) + "\nInstall them now?"):
                return False, "The Python packages the analysis needs were not installed."
            slicer.util.pip_install(" ".join(missing) + f" -c {_pinned_constraints()}")
    except RuntimeError:  # pip_ensure: the user declined
        return False, "The Python packages the analysis needs were not installed."
    except subprocess.CalledProcessError as exc:
        return False, f"Installing {', '.join(missing)} failed (pip exit code {exc.returncode}); see the Python console."
    still = missing_requirements()
    return (not still), (f"Still missing after the install: {', '.join(still)}; restart Slicer." if still else "")
