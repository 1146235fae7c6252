"""Box operations (IoU, NMS, clipping): torch only, the only copy in the package.

Boxes are ``Tensor[N, 4]`` in ``(x1, y1, x2, y2)``. ``plus_one=True`` selects the legacy pixel
convention of the reference post-processing and of the WIDER FACE toolkit, where a box covers
``x2 - x1 + 1`` pixels; the default is the continuous convention (``x2 - x1``).
"""

from __future__ import annotations

import torch


def box_area(boxes: torch.Tensor, *, plus_one: bool = False) -> torch.Tensor:
    """Areas ``[N]`` of ``boxes[N, 4]``."""
    one = 1.0 if plus_one else 0.0
    return (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)


def box_iou(a: torch.Tensor, b: torch.Tensor, *, plus_one: bool = False) -> torch.Tensor:
    """Pairwise IoU ``[N, M]`` between ``a[N, 4]`` and ``b[M, 4]``."""
    one = 1.0 if plus_one else 0.0
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt + one).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a, plus_one=plus_one)[:, None] + box_area(b, plus_one=plus_one)[None, :] - inter
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    *,
    plus_one: bool = False,
    max_output: int | None = None,
) -> torch.Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``Tensor[N, 4]`` (x1, y1, x2, y2).
        scores: ``Tensor[N]``.
        iou_threshold: a box is suppressed when its IoU with a kept, higher-scoring box is
            strictly greater than this.
        plus_one: legacy "+1" pixel convention for areas and overlaps.
        max_output: stop after this many kept boxes (``None``: no cap).

    Returns:
        ``Tensor[K]`` (int64) indices into ``boxes``, in descending score order. Ties in score keep
        the input order.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"nms: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: scores must have shape [{boxes.shape[0]}], got {tuple(scores.shape)}")
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = b.unbind(1)
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    limit = n if max_output is None else min(n, int(max_output))
    # Work on the shrinking list of candidates: each round keeps the best remaining box and
    # drops everything that overlaps it too much. O(K * N) with K kept boxes, O(N) memory.
    idx = torch.arange(n, device=boxes.device)
    keep: list[torch.Tensor] = []
    while idx.numel() > 0 and len(keep) < limit:
        i = idx[0]
        keep.append(i)
        rest = idx[1:]
        if rest.numel() == 0:
            break
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + one).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + one).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        idx = rest[iou <= iou_threshold]
    return order[torch.stack(keep)]


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    iou_threshold: float,
    *,
    plus_one: bool = False,
) -> torch.Tensor:
    """NMS applied independently within each group (e.g. each image of a batch) in one pass.

    Boxes of different groups are shifted apart so that they can never overlap. Returns indices
    into ``boxes`` sorted by descending score (across groups).
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    span = (boxes.max() - boxes.min()).abs() + 2.0
    offsets = (groups.to(boxes.dtype) * span)[:, None]
    return nms(boxes + offsets, scores, iou_threshold, plus_one=plus_one)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clip ``boxes[..., 4]`` (x1, y1, x2, y2) to the image rectangle ``[0, W] x [0, H]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)
