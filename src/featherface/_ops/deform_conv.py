"""The modulated deformable convolution (DCNv2) op, its custom-op registration and its ONNX symbolic.

:func:`modulated_deform_conv2d` has the semantics of ``torchvision.ops.deform_conv2d`` with one
offset group and one weight group: for every output location and kernel tap ``k`` the input is
sampled bilinearly at the regular tap position plus a learned offset ``(dy_k, dx_k)`` (zero outside
the image), multiplied by a modulation scalar ``m_k``, and the samples are combined with the conv
weight. The implementation is ``grid_sample`` + one matmul, so it runs on any device and exports to
ONNX (``GridSample``) without torchvision. Inside :func:`native_onnx_export` it exports as one ONNX
``DeformConv`` node instead (opset 19 and newer), with the same values. The layer built on it is
:class:`featherface._models.deform.ModulatedDeformConv2d`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["modulated_deform_conv2d", "native_onnx_export"]


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
