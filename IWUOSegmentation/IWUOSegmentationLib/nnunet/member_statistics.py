"""Streaming statistics over ensemble members: weighted Welford mean/M2, entropy and votes.

Why: nnU-Net averages mirror flips and folds in place, which throws the spread away; storing
every member would multiply memory by the member count. Within one sliding-window patch the
members (flips x folds x dropout samples) are added one at a time with Welford's update; the
patch's statistics are then pooled into the volume with nnU-Net's Gaussian window weights, so
memory is a fixed handful of arrays whatever the number of members.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

EPS = 1e-7


def member_probabilities(logits: torch.Tensor, region_based: bool) -> torch.Tensor:
    """Softmax over classes (label models) or per-region sigmoid (region models), in float32."""
    logits = logits.float()
    return torch.sigmoid(logits) if region_based else torch.softmax(logits, dim=0)


def entropy(p: torch.Tensor, region_based: bool) -> torch.Tensor:
    """Per-voxel entropy in nats: summed binary entropies (regions) or categorical entropy (labels)."""
    q = p.clamp(EPS, 1 - EPS)
    if region_based:
        return -(q * q.log() + (1 - q) * (1 - q).log()).sum(0, keepdim=True)
    return -(q * q.log()).sum(0, keepdim=True)


def votes(p: torch.Tensor, region_based: bool) -> torch.Tensor:
    """One member's hard decision as indicator channels (p>0.5 per region, or one-hot argmax)."""
    if region_based:
        return (p > 0.5).float()
    return torch.zeros_like(p).scatter_(0, p.argmax(0, keepdim=True), 1.0)


class PatchMembers:
    """Welford accumulation of the members evaluated on one patch."""

    def __init__(self, region_based: bool):
        self.region_based = region_based
        self.n = 0
        self.mean = self.m2 = self.mean_entropy = self.mean_votes = None

    def add(self, logits: torch.Tensor) -> None:
        p = member_probabilities(logits, self.region_based)
        h = entropy(p, self.region_based)
        v = votes(p, self.region_based)
        self.n += 1
        if self.n == 1:
            self.mean, self.m2 = p.clone(), torch.zeros_like(p)
            self.mean_entropy, self.mean_votes = h, v
            return
        delta = p - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (p - self.mean)
        self.mean_entropy += (h - self.mean_entropy) / self.n
        self.mean_votes += (v - self.mean_votes) / self.n


    def disagreement(self) -> torch.Tensor:
        """Fraction of this patch's members whose decision differs from the patch consensus."""
        if self.region_based:
            consensus = (self.mean > 0.5).float()
            return (consensus * (1 - self.mean_votes) + (1 - consensus) * self.mean_votes).mean(0, keepdim=True)
        return 1 - self.mean_votes.gather(0, self.mean.argmax(0, keepdim=True))

    def mutual_information(self) -> torch.Tensor:
        """Predictive entropy of the patch's member mean minus the members' expected entropy."""
        return (entropy(self.mean, self.region_based) - self.mean_entropy).clamp_min(0)


@dataclass
class VolumeStatistics:
    """Gaussian-weighted pool of per-patch member statistics over the whole (padded) volume.

    Spread is measured within each window (members evaluated on the same input patch) and then
    pooled, so differences between overlapping windows are not counted as member disagreement.
    """

    weight: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor
    mutual_information: torch.Tensor
    disagreement: torch.Tensor
    n_members: int = 0

    @classmethod
    def zeros(cls, n_channels: int, shape: tuple[int, ...]) -> VolumeStatistics:
        z = lambda c: torch.zeros((c, *shape), dtype=torch.float32)  # noqa: E731
        return cls(weight=torch.zeros(shape, dtype=torch.float32), mean=z(n_channels), variance=z(n_channels),
                   mutual_information=z(1), disagreement=z(1))

    def add_patch(self, sl: tuple, patch: PatchMembers, gaussian: torch.Tensor) -> None:
        g = gaussian.float()
        self.weight[sl[1:]] += g
        self.mean[sl] += patch.mean * g
        self.variance[sl] += patch.m2 / patch.n * g
        self.mutual_information[sl] += patch.mutual_information() * g
        self.disagreement[sl] += patch.disagreement() * g
        self.n_members = patch.n

    def finalize(self, region_based: bool) -> dict[str, torch.Tensor]:
        """Normalise by the window weights and derive the uncertainty maps (channel-first)."""
        w = self.weight.clamp_min(EPS)
        mean = self.mean / w
        variance = (self.variance / w).clamp_min(0)
        fg_variance = variance.mean(0, keepdim=True) if region_based or variance.shape[0] == 1 \
            else variance[1:].mean(0, keepdim=True)
        return {
            "member_mean": mean, "member_variance": variance,
            "variance": fg_variance,
            "entropy": entropy(mean, region_based),
            "mutual_information": (self.mutual_information / w).clamp_min(0),
            "disagreement": (self.disagreement / w).clamp(0, 1),
        }
