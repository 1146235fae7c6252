"""Checks of what a detector does, beyond its loss: the face-probability spread on a real photo.

A falling loss can hide a classifier that outputs the same face probability at every anchor (under
7:1 hard-negative mining a constant classifier still scores a plausible ``cls`` term). Tests use these
functions to catch it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from featherface.pipeline import face_probability, make_batch
from featherface.train.augment import MEAN_BGR
from featherface.train.modes import eval_mode

__all__ = ["ProbabilitySpread", "anchor_face_probabilities", "probability_spread"]


@torch.no_grad()
def anchor_face_probabilities(network: nn.Module, image_bgr: np.ndarray,
                              mean_bgr: tuple[float, float, float] = MEAN_BGR) -> torch.Tensor:
    """Face probability of every anchor: ``float32 [N]`` for a ``uint8 [H, W, 3]`` BGR image at its size.

    The network runs in eval mode (its mode is restored) on the CPU copy of the input.
    """
    with eval_mode(network):
        x = make_batch([image_bgr], mean_bgr)
        param = next(network.parameters())
        _, logits, _ = network(x.to(param.device))
    return face_probability(logits[0].float()).cpu()


@dataclass(frozen=True)
class ProbabilitySpread:
    """Summary of the per-anchor face probabilities of one image."""

    median: float
    p999: float
    max: float

    @property
    def spread(self) -> float:
        """``max - median``: about 0 for a constant classifier, near 1 once faces stand out."""
        return self.max - self.median


def probability_spread(probabilities: torch.Tensor) -> ProbabilitySpread:
    """Median, 99.9th percentile and maximum of ``probabilities[N]``."""
    p = probabilities.double()
    return ProbabilitySpread(float(p.median()), float(torch.quantile(p, 0.999)), float(p.max()))

