"""Modulated deformable convolution layer (DCNv2) in pure PyTorch.

The layer :class:`ModulatedDeformConv2d` predicts the sampling offsets and modulation of
:func:`featherface.ops.modulated_deform_conv2d` (``grid_sample`` + one matmul: any device, exports to
ONNX without torchvision) from its input. That op and :func:`native_onnx_export` live in
:mod:`featherface.ops` and are re-exported here.

ONNX export: by default the layer exports as its decomposition (``GridSample``, ``MatMul``, opset
16+), which every ONNX runtime with ``GridSample`` runs. Inside :func:`native_onnx_export` (used by
:mod:`featherface.export` for opset 19 and newer) it exports as one ONNX ``DeformConv`` node instead,
with the same values; ONNX Runtime releases that implement ``DeformConv`` run that node faster than
the decomposition.

Inference: :meth:`ModulatedDeformConv2d.fuse_bn` folds a following BatchNorm into the layer
(:class:`featherface.fuse.FusedModulatedDeformConv2d`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from featherface.fuse import FusedModulatedDeformConv2d
from featherface.ops import modulated_deform_conv2d, native_onnx_export

__all__ = ["ModulatedDeformConv2d", "modulated_deform_conv2d", "native_onnx_export"]


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
