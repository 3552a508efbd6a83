"""Install the Python packages the analysis needs into Slicer's Python, after asking (GUI layer).

torch comes from Slicer's PyTorch extension (the right CPU/CUDA build for the machine); the rest
through `slicer.packaging.pip_ensure` (Slicer >= 5.12; `slicer.packaging` is not imported by
`import slicer`, so it is imported here) or `slicer.util.pip_install` on older Slicer. What is asked
of pip, and which of Slicer's packages must survive it, is `host/python_packages.py`. Nothing is
installed in testing mode. Every outcome comes back as one line for the panel, not a traceback:
declined, failed (offline included: pip's exit code), or replaced one of Slicer's own packages.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import tempfile

from ..host.python_packages import (
    PROTECTED,
    REQUIREMENTS,
    constraints_text,
    installed_versions,
    pip_install_arguments,
    replaced,
)

DECLINED = "The Python packages the analysis needs were not installed."


def missing_requirements() -> list[str]:
    """pip requirements whose packages cannot be imported (torch excluded)."""
    importlib.invalidate_caches()  # a package pip has just installed is found without a restart
    return [req for module, req in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


def _constraints_file(versions: dict) -> str:
    """A temporary pip constraints file pinning Slicer's protected packages at `versions`."""
    handle, path = tempfile.mkstemp(prefix="iwuo_constraints_", suffix=".txt")
    with os.fdopen(handle, "w") as f:
        f.write(constraints_text(versions))
    return path


class MissingDependencies(RuntimeError):
    """What the analysis needs is not importable (declined, testing mode, no PyTorch extension, failed install)."""


def ensure_dependencies(confirm) -> None:
    """Make torch and the requirements importable, or raise MissingDependencies with the reason in one line;
    `confirm(text) -> bool` asks the user."""
    ok, why = _ensure(confirm)
    if not ok:
        raise MissingDependencies(why)


def _ensure_torch(confirm, testing: bool) -> str:
    """'' when torch is importable (installed now if needed), else the line saying why not."""
    if importlib.util.find_spec("torch") is not None:
        return ""
    if testing:
        return "PyTorch is not installed (nothing is installed in testing mode)."
    if not confirm("IWUOSegmentation needs PyTorch. Install it now with the PyTorch extension?"):
        return "PyTorch is needed to analyse a case."
    try:
        import PyTorchUtils
    except ImportError:
        return ("The PyTorch extension is not installed: install 'PyTorch' from the Extensions Manager, "
                "restart Slicer, and try again.")
    try:  # raises on any failure (light-the-torch's exit code, no network); returns None only on its own prompt
        PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False)
    except Exception as exc:
        return f"PyTorch could not be installed ({type(exc).__name__}: {exc}); see the Python console."
    return ""


def _ensure(confirm) -> tuple[bool, str]:
    import slicer

    testing = bool(slicer.app.testingEnabled())
    why = _ensure_torch(confirm, testing)
    if why:
        return False, why
    missing = missing_requirements()
    if not missing:
        return True, ""
    if testing:
        return False, f"Missing Python packages (nothing is installed in testing mode): {', '.join(missing)}"
    try:
        import slicer.packaging as packaging
    except ImportError:  # Slicer < 5.12
        packaging = None
    before = installed_versions()
    constraints = _constraints_file(before)
    try:
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(missing, constraints=constraints, skip_packages=list(PROTECTED),
                                 requester="IWUOSegmentation")
        else:
            if not confirm("IWUOSegmentation needs these Python packages:\n" + "\n".join(missing) + "\nInstall them now?"):
                return False, DECLINED
            slicer.util.pip_install(pip_install_arguments(missing, constraints))
    except RuntimeError as exc:  # pip_ensure: the user declined; pip_install: PythonSlicer not found
        return False, DECLINED if packaging is not None else f"Installing {', '.join(missing)} failed: {exc}"
    except subprocess.CalledProcessError as exc:
        return False, (f"Installing {', '.join(missing)} failed (pip exit code {exc.returncode}; offline? pip needs "
                       "the package index); see the Python console.")
    finally:
        os.remove(constraints)
    changed = replaced(before, installed_versions())
    if changed:
        return False, (f"Installing {', '.join(missing)} changed Slicer's own packages ({'; '.join(changed)}): "
                       "restart Slicer, and reinstall it if it misbehaves.")
    still = missing_requirements()
    return (not still), (f"Still missing after the install: {', '.join(still)}; restart Slicer." if still else "")
