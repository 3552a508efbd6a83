"""Install the Python packages the module needs into Slicer's Python, after asking (GUI layer).

torch comes from Slicer's PyTorch extension (the right CPU/CUDA build for the machine);
the rest through `slicer.packaging.pip_ensure` (Slicer >= 5.12, which also skips installs
when Slicer runs tests) or `slicer.util.pip_install` on older Slicer. Never during tests.
"""

from __future__ import annotations

import importlib.util

#: import name -> pip requirement
REQUIREMENTS = {
    "nnunetv2": "nnunetv2>=2.5",
    "SimpleITK": "SimpleITK>=2.2",
    "scipy": "scipy>=1.10",
    "matplotlib": "matplotlib>=3.7",
    "nilearn": "nilearn>=0.10",
    "medpy": "medpy>=0.5",
}


def missing_requirements() -> list[str]:
    """pip requirements whose packages cannot be imported (torch excluded)."""
    return [req for module, req in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


def ensure_dependencies(confirm) -> bool:
    """Make torch and the requirements importable; `confirm(text) -> bool` asks the user.

    Returns False when the user declines or Slicer runs in testing mode with something missing.
    """
    import slicer

    testing = bool(getattr(slicer.app, "testingEnabled", lambda: False)())
    if importlib.util.find_spec("torch") is None:
        if testing or not confirm("IWUOSegmentation needs PyTorch. Install it now with the PyTorch extension?"):
            return False
        try:
            import PyTorchUtils
        except ImportError as exc:
            raise RuntimeError("The PyTorch extension is not installed: install 'PyTorch' from the Extensions "
                               "Manager, restart Slicer, and try again.") from exc
        torch_logic = PyTorchUtils.PyTorchUtilsLogic()
        if not torch_logic.torchInstalled() and torch_logic.installTorch(askConfirmation=False) is None:
            return False
    missing = missing_requirements()
    if not missing:
        return True
    if testing:
        return False
    packaging = getattr(slicer, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        from packaging.requirements import Requirement

        packaging.pip_ensure([Requirement(r) for r in missing], requester="IWUOSegmentation")
    else:
        if not confirm("IWUOSegmentation needs these Python packages:\n" + "\n".join(missing) + "\nInstall them now?"):
            return False
        slicer.util.pip_install(" ".join(missing))
    return not missing_requirements()
