"""Tensor operations, torch only: box IoU and NMS, and the modulated deformable convolution.

Each is the only copy in the package; none of them knows about a network.

Boxes are ``Tensor[N, 4]`` in ``(x1, y1, x2, y2)``. ``plus_one=True`` selects the legacy pixel
convention of the reference post-processing and of the WIDER FACE toolkit, where a box covers
``x2 - x1 + 1`` pixels; the default is the continuous convention (``x2 - x1``).

:func:`modulated_deform_conv2d` (DCNv2) has the semantics of ``torchvision.ops.deform_conv2d`` with one
offset group and one weight group: for every output location and kernel tap ``k`` the input is
sampled bilinearly at the regular tap position plus a learned offset ``(dy_k, dx_k)`` (zero outside
the image), multiplied by a modulation scalar ``m_k``, and the samples are combined with the conv
weight. The implementation is ``grid_sample`` + one matmul, so it runs on any device and exports to
ONNX (``GridSample``) without torchvision. Inside :func:`native_onnx_export` it exports as one ONNX
``DeformConv`` node instead (opset 19 and newer), with the same values. The layer built on it is
:class:`featherface.models.deform.ModulatedDeformConv2d`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["box_area", "box_iou", "nms", "modulated_deform_conv2d", "native_onnx_export"]


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


# -- modulated deformable convolution (DCNv2) ---------------------------------------------------------


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> torch.Tensor:
    """Modulated deformable conv.

    Args:
        x: ``[B, C, H, W]`` input.
        offset: ``[B, 2*K, Ho, Wo]``, for each tap ``k = ky*kw + kx`` the pair ``(dy, dx)`` in pixels.
        mask: ``[B, K, Ho, Wo]`` modulation scalars.
        weight: ``[O, C, kh, kw]``.
        bias: optional ``[O]``.

    Returns:
        ``[B, O, Ho, Wo]``.
    """
    b, c, h, w = x.shape
    o, cw, kh, kw = weight.shape
    if cw != c:
        raise ValueError(f"modulated_deform_conv2d: weight expects {cw} input channels, input has {c}")
    k = kh * kw
    ho, wo = offset.shape[-2:]
    if offset.shape[1] != 2 * k or mask.shape[1] != k:
        raise ValueError(
            f"modulated_deform_conv2d: offset needs {2 * k} channels and mask {k}, "
            f"got {offset.shape[1]} and {mask.shape[1]}"
        )
    if _NATIVE_EXPORT.get() and torch.onnx.is_in_onnx_export():
        if bias is None:
            bias = torch.zeros(o, dtype=x.dtype, device=x.device)
        return torch.ops.featherface.modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation)
    dev, dt = x.device, x.dtype
    ys = torch.arange(ho, device=dev, dtype=dt) * stride - padding
    xs = torch.arange(wo, device=dev, dtype=dt) * stride - padding
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dilation).repeat_interleave(kw)  # [K]
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dilation).repeat(kh)  # [K]
    off = offset.reshape(b, k, 2, ho, wo)
    py = off[:, :, 0] + (tap_y[:, None, None] + ys[None, :, None])  # [B, K, Ho, Wo]
    px = off[:, :, 1] + (tap_x[:, None, None] + xs[None, None, :])
    # pixel -> grid_sample coordinates (align_corners=False is exact and safe for size-1 maps)
    gx = (2.0 * px + 1.0) / w - 1.0
    gy = (2.0 * py + 1.0) / h - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(b, k * ho, wo, 2)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(b, c, k, ho, wo) * mask.reshape(b, 1, k, ho, wo)
    out = torch.matmul(weight.reshape(o, c * k), sampled.reshape(b, c * k, ho * wo))
    out = out.reshape(b, o, ho, wo)
    if bias is not None:
        out = out + bias.reshape(1, o, 1, 1)
    return out


# -- export as one ONNX DeformConv node ---------------------------------------------------------------

_NATIVE_EXPORT: contextvars.ContextVar[bool] = contextvars.ContextVar("featherface_native_deform", default=False)
_OP_REGISTERED = False


def _register_native_op() -> None:
    """Define ``torch.ops.featherface.modulated_deform_conv2d`` and its ONNX ``DeformConv`` symbolic (once)."""
    global _OP_REGISTERED
    if _OP_REGISTERED:
        return
    from torch.onnx.symbolic_helper import parse_args

    @torch.library.custom_op("featherface::modulated_deform_conv2d", mutates_args=())
    def _op(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
            stride: int, padding: int, dilation: int) -> torch.Tensor:
        with _native(False):
            return modulated_deform_conv2d(x, offset, mask, weight, bias, stride=stride, padding=padding,
                                           dilation=dilation)

    @_op.register_fake
    def _shape(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
               bias: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
        return x.new_empty((x.shape[0], weight.shape[0], offset.shape[2], offset.shape[3]))

    @parse_args("v", "v", "v", "v", "v", "i", "i", "i")
    def _symbolic(g: Any, x: Any, offset: Any, mask: Any, weight: Any, bias: Any, stride: int, padding: int,
                  dilation: int) -> Any:
        kh, kw = weight.type().sizes()[2:]
        return g.op("DeformConv", x, weight, offset, bias, mask, kernel_shape_i=[kh, kw],
                    strides_i=[stride, stride], pads_i=[padding] * 4, dilations_i=[dilation, dilation],
                    group_i=1, offset_group_i=1)

    torch.onnx.register_custom_op_symbolic("featherface::modulated_deform_conv2d", _symbolic, 19)
    _OP_REGISTERED = True


@contextlib.contextmanager
def _native(enabled: bool) -> Iterator[None]:
    token = _NATIVE_EXPORT.set(enabled)
    try:
        yield
    finally:
        _NATIVE_EXPORT.reset(token)


@contextlib.contextmanager
def native_onnx_export() -> Iterator[None]:
    """Within this block, ONNX export writes each modulated deformable conv as one ``DeformConv`` node.

    ``DeformConv`` exists from ONNX opset 19 on. The semantics are the same as the decomposition:
    offsets ``(dy, dx)`` per tap, modulation mask, zero padding; one weight and one offset group.
    """
    _register_native_op()
    with _native(True):
        yield
