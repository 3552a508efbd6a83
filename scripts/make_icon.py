"""Draw the 128x128 extension icon: a phantom's axial FLAIR slice with its uncertainty heatmap
and ranked-slice ticks. Writes IWUOSegmentation.png and the module's Resources/Icons copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from IWUOSegmentationLib.data.phantom import make_phantom  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    case = make_phantom(3)
    z = int(np.argmax((case.label > 0).sum((1, 2))))
    flair = case.channels["FLAIR"][z][::-1]
    tumour = (case.label[z] > 0)[::-1]
    edge = ndimage.binary_dilation(tumour, iterations=2) & ~ndimage.binary_erosion(tumour, iterations=2)
    heat = ndimage.gaussian_filter(edge.astype(float), 1.2)
    fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(flair, cmap="gray", vmin=-2, vmax=3)
    ax.imshow(np.ma.masked_less(heat, 0.08), cmap="inferno", alpha=0.85, vmin=0, vmax=heat.max())
    for i, y in enumerate(np.linspace(0.15, 0.85, 5)):
        ax.add_patch(plt.Rectangle((0.9, y), 0.08 - 0.012 * i, 0.05, transform=ax.transAxes, color="#ffcc33"))
    ax.axis("off")
    out = ROOT / "IWUOSegmentation.png"
    fig.savefig(out, dpi=100, facecolor="black")
    shutil.copy(out, ROOT / "IWUOSegmentation" / "Resources" / "Icons" / "IWUOSegmentation.png")


if __name__ == "__main__":
    main()
