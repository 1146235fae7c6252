"""Modulated deformable convolution layer (DCNv2) in pure PyTorch.

The layer :class:`ModulatedDeformConv2d` predicts the sampling offsets and modulation of
:func:`featherface._ops.deform_conv.modulated_deform_conv2d` (``grid_sample`` + one matmul: any device,
exports to ONNX without torchvision) from its input. That op, its custom-op registration and its ONNX
symbolic (:func:`~featherface._ops.deform_conv.native_onnx_export`) live in :mod:`featherface._ops.deform_conv`.

ONNX export: by default the layer exports as its decomposition (``GridSample``, ``MatMul``, opset
16+), which every ONNX runtime with ``GridSample`` runs. Inside ``native_onnx_export`` (used by
:mod:`featherface._engines.onnx_export` for opset 19 and newer) it exports as one ONNX ``DeformConv`` node instead,
with the same values; ONNX Runtime releases that implement ``DeformConv`` run that node faster than
the decomposition.

Inference: :meth:`ModulatedDeformConv2d.fuse_bn` folds a following BatchNorm into the layer
(:class:`FusedModulatedDeformConv2d`, defined here: it is the inference form of this layer).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from featherface._models.fuse import folded_weight_and_bias
from featherface._ops.deform_conv import modulated_deform_conv2d

__all__ = ["ModulatedDeformConv2d", "FusedModulatedDeformConv2d"]


class ModulatedDeformConv2d(nn.Module):
    """3x3 DCNv2 layer as used in the FeatherFace SSH (stride 1, padding 1, no bias).

    Offsets (``offset``: 3x3 conv, in -> 18, with bias) and modulation (``modulator``: 3x3 conv,
    in -> 9, with bias; mask = ``2 * sigmoid``) are predicted from the input and zero-initialised, so
    a fresh layer is exactly a plain 3x3 conv with ``weight``.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 3) -> None:
        super().__init__()
        k = kernel_size * kernel_size
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.offset = nn.Conv2d(cin, 2 * k, kernel_size, 1, self.padding, bias=True)
        self.modulator = nn.Conv2d(cin, k, kernel_size, 1, self.padding, bias=True)
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel_size, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        for m in (self.offset, self.modulator):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset(x)
        mask = 2.0 * torch.sigmoid(self.modulator(x))
        return modulated_deform_conv2d(x, offset, mask, self.weight, padding=self.padding)

    def fuse_bn(self, bn: nn.BatchNorm2d) -> FusedModulatedDeformConv2d:
        """Inference form of ``bn(self(x))`` (eval statistics): a new :class:`FusedModulatedDeformConv2d`
        with ``bn`` folded into the weight plus a bias and the offset and modulation convs merged into
        one. ``self`` is not modified."""
        return FusedModulatedDeformConv2d.from_parts(self.offset, self.modulator, self.weight, self.padding, bn)


class FusedModulatedDeformConv2d(nn.Module):
    """Inference form of a modulated deformable conv (DCNv2) followed by a BatchNorm.

    The BatchNorm is folded into the main weight plus a bias, and the offset (``2K`` channels) and
    modulation (``K`` channels, mask ``2 * sigmoid``) predictors, two convs on the same input, are
    merged into one conv ``offset_mask`` with ``3K`` outputs (their weights stacked), so the input is
    read once. Built by :meth:`from_parts` (for featherface's layer:
    :meth:`ModulatedDeformConv2d.fuse_bn`).
    """

    def __init__(self, offset_mask: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> None:
        super().__init__()
        self.offset_mask = offset_mask
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.padding = padding
        self.taps = offset_mask.out_channels // 3

    @classmethod
    def from_parts(cls, offset: nn.Conv2d, modulator: nn.Conv2d, weight: torch.Tensor, padding: int,
                   bn: nn.BatchNorm2d) -> FusedModulatedDeformConv2d:
        """Merge the ``offset`` and ``modulator`` predictor convs and fold ``bn`` into ``weight[O, C, kh, kw]``.

        The deformable conv is ``modulated_deform_conv2d(x, offset(x), 2 * sigmoid(modulator(x)),
        weight, padding=padding)`` (no bias); the result computes ``bn`` of it.
        """
        if weight.shape[0] != bn.num_features:
            raise ValueError(f"cannot fold BatchNorm2d({bn.num_features}) into a DCN with {weight.shape[0]} outputs")
        merged = nn.Conv2d(offset.in_channels, offset.out_channels + modulator.out_channels,
                           offset.kernel_size, offset.stride, offset.padding,  # type: ignore[arg-type]
                           bias=True, device=offset.weight.device, dtype=offset.weight.dtype)
        with torch.no_grad():
            merged.weight.copy_(torch.cat([offset.weight, modulator.weight], 0))
            zeros = offset.weight.new_zeros(offset.out_channels + modulator.out_channels)
            parts = [offset.bias if offset.bias is not None else zeros[: offset.out_channels],
                     modulator.bias if modulator.bias is not None else zeros[: modulator.out_channels]]
            merged.bias.copy_(torch.cat(parts, 0))  # type: ignore[union-attr]
        w, b = folded_weight_and_bias(weight, None, bn)
        return cls(merged, w, b, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.offset_mask(x)
        k = self.taps
        offset, mask = om[:, : 2 * k], 2.0 * torch.sigmoid(om[:, 2 * k:])
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, padding=self.padding)
