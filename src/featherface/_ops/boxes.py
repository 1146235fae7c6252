"""Box operations, torch only: area, IoU, NMS and clipping to the image.

Each is the only copy in the package; none of them knows about a network.

Boxes are ``Tensor[N, 4]`` in ``(x1, y1, x2, y2)``. ``plus_one=True`` selects the legacy pixel
convention of the reference post-processing and of the WIDER FACE toolkit, where a box covers
``x2 - x1 + 1`` pixels; the default is the continuous convention (``x2 - x1``).
"""

from __future__ import annotations

import torch

__all__ = ["box_area", "box_iou", "nms", "clip_boxes"]


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
    limit = n if max_output is None else min(n, int(max_output))
    keep = _greedy_sorted(b, float(iou_threshold), plus_one, limit)
    return order[keep]


_NMS_BLOCK = 256


def _greedy_sorted(b: torch.Tensor, thr: float, plus_one: bool, limit: int) -> torch.Tensor:
    """Exact greedy NMS over score-sorted ``b[N, 4]``, processed in blocks of 256 boxes.

    Each block is first suppressed by every box kept in earlier blocks (one vectorised IoU), then
    resolved greedily inside itself from its ``256 x 256`` overlap matrix. Cost ``O(N * K)`` vector
    work plus ``N`` tiny NumPy steps, instead of ``K`` full passes over all candidates.
    """
    n = b.shape[0]
    kept: list[torch.Tensor] = []
    kept_boxes = b.new_zeros((0, 4))
    for start in range(0, n, _NMS_BLOCK):
        blk = b[start : start + _NMS_BLOCK]
        alive = torch.ones(blk.shape[0], dtype=torch.bool, device=b.device)
        if kept_boxes.shape[0]:
            alive &= ~(box_iou(blk, kept_boxes, plus_one=plus_one) > thr).any(dim=1)
        over = (box_iou(blk, blk, plus_one=plus_one) > thr).cpu().numpy()
        alive_np = alive.cpu().numpy()
        for i in range(blk.shape[0]):
            if alive_np[i]:
                alive_np[i + 1 :] &= ~over[i, i + 1 :]
        idx = torch.from_numpy(alive_np.nonzero()[0]).to(b.device)
        if idx.numel():
            kept.append(idx + start)
            kept_boxes = torch.cat([kept_boxes, blk[idx]])
        if kept_boxes.shape[0] >= limit:
            break
    if not kept:
        return torch.empty(0, dtype=torch.long, device=b.device)
    return torch.cat(kept)[:limit]


def clip_boxes(boxes: torch.Tensor, size_wh: torch.Tensor) -> torch.Tensor:
    """``boxes[..., 4]`` ``(x1, y1, x2, y2)`` clipped to ``[0, width] x [0, height]``.

    ``size_wh`` is ``Tensor[2]`` ``(width, height)`` in the boxes' dtype (a tensor so that an ONNX graph
    can pass its dynamic input size). Written as ``max(min(x, hi), 0)``, which traces to ONNX
    ``Min``/``Max``; equal to ``numpy.clip`` bit for bit.
    """
    hi = size_wh.repeat(2)
    return torch.max(torch.min(boxes, hi), torch.zeros_like(hi))
