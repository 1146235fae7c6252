"""Raw network outputs -> detections: softmax, decode, threshold, top-k, NMS. One copy.

Used by :class:`featherface.FaceDetector`, the WIDER FACE evaluation and the ONNX reference tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from featherface.box_coder import Variances, decode_boxes, decode_landmarks
from featherface.ops import nms


@dataclass(frozen=True)
class PostprocessOptions:
    """Thresholds of the detection pipeline.

    ``score_threshold``: keep faces whose score is strictly greater. ``iou_threshold``: NMS overlap.
    ``pre_nms_top_k`` / ``max_detections``: caps before / after NMS (``None`` = no cap).
    ``legacy_plus_one``: "+1" pixel convention in NMS (reference post-processing; used for
    evaluation parity).
    """

    score_threshold: float = 0.5
    iou_threshold: float = 0.4
    pre_nms_top_k: int | None = 5000
    max_detections: int | None = 750
    legacy_plus_one: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        for name in ("pre_nms_top_k", "max_detections"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")


@dataclass(frozen=True)
class RawDetections:
    """Detections of one image, in **network-input pixels**, descending score.

    ``boxes[K, 4]`` (x1, y1, x2, y2), ``scores[K]``, ``landmarks[K, 10]`` (x0, y0, ..., x4, y4).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    landmarks: torch.Tensor


# Margin of the logit-space pre-filter: far above the float32 rounding of ``l1 - l0`` for logits of
# magnitude up to ~1e4, so no prior whose softmax score passes the threshold is dropped by it.
_LOGIT_MARGIN = 1e-2


def _face_candidates(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices ``[K]`` of the rows of ``logits[N, 2]`` whose face probability may exceed ``threshold``.

    ``softmax(l)[1] = sigmoid(l1 - l0)`` is monotonic in ``l1 - l0``, so comparing the logit
    difference with ``logit(threshold)`` (minus a margin) selects a superset of the passing rows
    without computing a probability for all ``N`` priors; :func:`face_probability` is then taken on
    the candidates only, which gives the same scores as on every row.
    """
    if not 0.0 < threshold < 1.0:
        return torch.arange(logits.shape[0], device=logits.device)
    cut = math.log(threshold / (1.0 - threshold)) - _LOGIT_MARGIN
    return torch.nonzero((logits[:, 1] - logits[:, 0]) > cut).squeeze(1)


def face_probability(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(logits, -1)[..., 1]`` for ``logits[..., 2]``, written out (max-shifted, like softmax).

    Equal to ``torch.softmax`` to float32 rounding. Written out because ``torch.softmax`` on CPU
    always opens an OpenMP parallel region, even for a few rows, after which torch's idle OpenMP
    threads spin-wait and slow down the next ONNX Runtime call on the same cores (measured +15-20%
    network time at 640x480 with 2 threads); these elementwise ops stay on the calling thread for
    the sizes seen here.
    """
    e = (logits - logits.amax(dim=-1, keepdim=True)).exp()
    return e[..., 1] / (e[..., 0] + e[..., 1])


def postprocess(
    loc: torch.Tensor,
    logits: torch.Tensor,
    landmarks: torch.Tensor,
    priors: torch.Tensor,
    variances: Variances,
    input_size: tuple[int, int],
    options: PostprocessOptions,
    *,
    scores_are_probabilities: bool = False,
) -> list[RawDetections]:
    """Decode a batch of raw outputs.

    Args:
        loc: ``[B, N, 4]`` box offsets. logits: ``[B, N, 2]`` class logits (or probabilities with
            ``scores_are_probabilities``). landmarks: ``[B, N, 10]`` landmark offsets.
        priors: ``[N, 4]`` for the network input of ``input_size = (H, W)``.

    Returns:
        One :class:`RawDetections` per image, coordinates in input pixels (not clipped).
    """
    h, w = input_size
    box_scale = torch.tensor([w, h, w, h], dtype=loc.dtype, device=loc.device)
    ldm_scale = torch.tensor([w, h] * 5, dtype=loc.dtype, device=loc.device)
    results = []
    for b in range(loc.shape[0]):
        if scores_are_probabilities:
            keep = torch.nonzero(logits[b, :, 1] > options.score_threshold).squeeze(1)
            scores = logits[b, keep, 1]
        else:
            keep = _face_candidates(logits[b], options.score_threshold)
            scores = face_probability(logits[b, keep])
            passed = scores > options.score_threshold
            keep, scores = keep[passed], scores[passed]
        order = torch.sort(scores, descending=True, stable=True).indices
        if options.pre_nms_top_k is not None:
            order = order[: options.pre_nms_top_k]
        keep, scores = keep[order], scores[order]
        pri = priors[keep]
        boxes = decode_boxes(loc[b, keep], pri, variances) * box_scale
        pts = decode_landmarks(landmarks[b, keep], pri, variances) * ldm_scale
        sel = nms(boxes, scores, options.iou_threshold, plus_one=options.legacy_plus_one,
                  max_output=options.max_detections)
        results.append(RawDetections(boxes[sel], scores[sel], pts[sel]))
    return results
