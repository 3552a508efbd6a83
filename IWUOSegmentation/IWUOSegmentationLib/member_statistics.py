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


@dataclass
class VolumeStatistics:
    """Gaussian-weighted pool of per-patch member statistics over the whole (padded) volume."""

    weight: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor
    mean_entropy: torch.Tensor
    mean_votes: torch.Tensor
    n_members: int = 0

    @classmethod
    def zeros(cls, n_channels: int, shape: tuple[int, ...]) -> VolumeStatistics:
        z = lambda c: torch.zeros((c, *shape), dtype=torch.float32)  # noqa: E731
        return cls(weight=torch.zeros(shape, dtype=torch.float32), mean=z(n_channels), variance=z(n_channels),
                   mean_entropy=z(1), mean_votes=z(n_channels))

    def add_patch(self, sl: tuple, patch: PatchMembers, gaussian: torch.Tensor) -> None:
        g = gaussian.float()
        self.weight[sl[1:]] += g
        self.mean[sl] += patch.mean * g
        self.variance[sl] += patch.m2 / patch.n * g
        self.mean_entropy[sl] += patch.mean_entropy * g
        self.mean_votes[sl] += patch.mean_votes * g
        self.n_members = patch.n

    def finalize(self, region_based: bool) -> dict[str, torch.Tensor]:
        """Normalise by the window weights and derive the uncertainty maps (channel-first)."""
        w = self.weight.clamp_min(EPS)
        mean = self.mean / w
        variance = (self.variance / w).clamp_min(0)
        expected_entropy = self.mean_entropy / w
        mean_votes = self.mean_votes / w
        predictive_entropy = entropy(mean, region_based)
        if region_based:
            consensus = (mean > 0.5).float()
            disagreement = (consensus * (1 - mean_votes) + (1 - consensus) * mean_votes).mean(0, keepdim=True)
            fg_variance = variance.mean(0, keepdim=True)
        else:
            agree = mean_votes.gather(0, mean.argmax(0, keepdim=True))
            disagreement = 1 - agree
            fg_variance = variance[1:].mean(0, keepdim=True) if variance.shape[0] > 1 else variance
        return {
            "member_mean": mean, "member_variance": variance,
            "variance": fg_variance,
            "entropy": predictive_entropy,
            "mutual_information": (predictive_entropy - expected_entropy).clamp_min(0),
            "disagreement": disagreement.clamp(0, 1),
        }
