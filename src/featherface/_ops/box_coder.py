"""Box and landmark coding against priors: the only copy, used by inference, training and export.

Conventions: priors are ``(cx, cy, w, h)``; boxes are ``(x1, y1, x2, y2)``; landmarks are 5 points
flattened as ``(x0, y0, ..., x4, y4)`` in the order left eye, right eye, nose, left mouth corner,
right mouth corner. Everything here is normalised by the network input size; callers scale to pixels.
Leading batch dimensions broadcast: ``loc[..., N, 4]`` with ``priors[N, 4]``.
"""

from __future__ import annotations

import torch

__all__ = ["encode_boxes", "decode_boxes", "encode_landmarks", "decode_landmarks", "Variances"]

Variances = tuple[float, float]


def encode_boxes(boxes: torch.Tensor, priors: torch.Tensor, variances: Variances) -> torch.Tensor:
    """``boxes[..., N, 4]`` (x1, y1, x2, y2) matched to ``priors[N, 4]`` -> offsets ``[..., N, 4]``.

    ``t_xy = (centre - prior_centre) / (v0 * prior_wh)``; ``t_wh = log(wh / prior_wh) / v1``.
    """
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2 - priors[..., :2]
    centre = centre / (variances[0] * priors[..., 2:])
    wh = (boxes[..., 2:] - boxes[..., :2]) / priors[..., 2:]
    wh = torch.log(wh) / variances[1]
    return torch.cat([centre, wh], dim=-1)


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variances: Variances) -> torch.Tensor:
    """Offsets ``loc[..., N, 4]`` -> boxes ``[..., N, 4]`` (x1, y1, x2, y2), normalised.

    The arithmetic order (``x1 = cx - w/2``, ``x2 = x1 + w``) follows the reference implementation
    so that decoded boxes agree with it to float32 rounding.
    """
    centre = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    wh = priors[..., 2:] * torch.exp(loc[..., 2:] * variances[1])
    top_left = centre - wh / 2
    return torch.cat([top_left, top_left + wh], dim=-1)


def encode_landmarks(landmarks: torch.Tensor, priors: torch.Tensor, variances: Variances) -> torch.Tensor:
    """``landmarks[..., N, 10]`` (x0, y0, ..., x4, y4) -> offsets ``[..., N, 10]`` (no log term)."""
    pts = landmarks.reshape(*landmarks.shape[:-1], 5, 2)
    off = (pts - priors[..., None, :2]) / (variances[0] * priors[..., None, 2:])
    return off.reshape(landmarks.shape)


def decode_landmarks(pre: torch.Tensor, priors: torch.Tensor, variances: Variances) -> torch.Tensor:
    """Offsets ``pre[..., N, 10]`` -> landmarks ``[..., N, 10]`` (x0, y0, ..., x4, y4), normalised."""
    pts = pre.reshape(*pre.shape[:-1], 5, 2)
    out = priors[..., None, :2] + pts * variances[0] * priors[..., None, 2:]
    return out.reshape(pre.shape)
