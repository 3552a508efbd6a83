"""How a case is analysed: members, device, test-time mirroring, dropout samples, tile step, defined once.

Every caller (the `iwuo` commands, the browser review's preparation, the demo, the evaluation, the self-test,
the Slicer module's parameter node) takes its defaults from here. Imports nothing heavy: the front ends
and stock Slicer (no torch) read these defaults too.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Kinds of ensemble member: test-time mirror flips, cross-validation folds, dropout samples.
MEMBER_KINDS = ("flips", "folds", "dropout")
#: Members by default: the 8 mirror flips of each fold (dropout only where the network has dropout, on request).
DEFAULT_MEMBERS = ("flips", "folds")
#: The same as the comma-separated text the command line and the Slicer module take.
DEFAULT_MEMBERS_TEXT = ",".join(DEFAULT_MEMBERS)
#: `auto`: a CUDA GPU, then Apple MPS, then the CPU (nnunet/inference.resolve_device).
DEFAULT_DEVICE = "auto"


def parse_members(text: str) -> tuple[str, ...]:
    """`flips,folds` -> ("flips", "folds"); blanks dropped (the kinds are checked where the members are drawn)."""
    return tuple(m.strip() for m in text.split(",") if m.strip())


@dataclass(frozen=True)
class AnalysisSettings:
    """The choices of one analysis run; the defaults are the product's."""

    device: str = DEFAULT_DEVICE
    members: tuple[str, ...] = DEFAULT_MEMBERS
    tta: bool = True  # nnU-Net's test-time mirroring (off = nnUNetv2_predict --disable_tta: no flip members)
    dropout_samples: int = 5  # passes with dropout on, where "dropout" is a member kind and the network has dropout
    tile_step_size: float = 0.5  # nnU-Net's sliding-window step, as a fraction of the patch
    trust_model: bool = False  # allow checkpoints holding pickled code (model_folder.load_checkpoint)
    cpu_fallback: bool = False  # retry on the CPU when the GPU runs out of memory
    seed: int = 0  # of the dropout samples


#: The product's analysis: what every caller gets unless it chooses otherwise (frozen, so shared safely).
DEFAULT_SETTINGS = AnalysisSettings()
