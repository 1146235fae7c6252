"""Inference-time BatchNorm folding: :func:`fuse_for_inference`.

In eval mode a BatchNorm is an affine map per channel, ``y = (x - mean) * g / sqrt(var + eps) + b``.
When it directly follows a convolution it can be folded into that convolution's weight and bias,
which removes one pass over every feature map. This module walks a network with explicit knowledge
of the featherface building blocks and folds every such pair:

- ``conv -> BN`` pairs that are consecutive children of an ``nn.Sequential`` (MobileNetV1
  ``conv_bn`` / ``conv_dw`` blocks, the V2 Ultra BiFPN block ``dw -> pw -> BN -> ReLU``);
- :class:`~featherface.models.layers.ConvBN` (V1 BiFPN projections and shuffle block; V2 Ultra
  projections, grouped SSH and head stems);
- the V1 BiFPN :class:`~featherface.models.featherface_v1.SepConvBlock` (BN folded into the
  pointwise conv);
- the CBAM spatial gates of both networks (7x7 conv + BN);
- the V1 :class:`~featherface.models.featherface_v1.DeformConvBN` (BN folded into the deformable
  conv's main weight plus a new bias; the offset and modulation predictors, two convs on the same
  input, are merged into one: :class:`FusedModulatedDeformConv2d`).

Folded BatchNorms are replaced by ``nn.Identity``. A BatchNorm that does not directly follow a
convolution (none in the shipped networks; possible in custom variants) is left as it is.
The folding is computed in float64 and rounded once, so outputs agree with the unfused eval network
to float32 rounding (about 1e-6 relative).
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from featherface.models.deform import ModulatedDeformConv2d, modulated_deform_conv2d

logger = logging.getLogger(__name__)

__all__ = ["fuse_for_inference", "fold_bn_into_conv", "FusedModulatedDeformConv2d", "count_batchnorms"]


def _folded(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight', bias')`` of ``bn(conv(x))`` for a conv with ``weight[O, ...]`` and optional ``bias[O]``."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    dt = torch.float64
    mean, var = bn.running_mean.to(dt), bn.running_var.to(dt)
    gamma = bn.weight.detach().to(dt) if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().to(dt) if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    w = weight.detach().to(dt) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    b0 = bias.detach().to(dt) if bias is not None else torch.zeros_like(mean)
    b = (b0 - mean) * scale + beta
    return w.to(weight.dtype), b.to(weight.dtype)


def fold_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (eval statistics) into ``conv`` in place; ``conv`` gains a bias if it had none."""
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold BatchNorm2d({bn.num_features}) into a conv with {conv.out_channels} outputs")
    w, b = _folded(conv.weight, conv.bias, bn)
    conv.weight = nn.Parameter(w, requires_grad=False)
    conv.bias = nn.Parameter(b, requires_grad=False)


class FusedModulatedDeformConv2d(nn.Module):
    """Inference form of a :class:`~featherface.models.deform.ModulatedDeformConv2d` + BatchNorm.

    The BatchNorm is folded into the main weight plus a bias, and the offset (``2K`` channels) and
    modulation (``K`` channels) predictors, two convs on the same input, are merged into one conv
    ``offset_mask`` with ``3K`` outputs (their weights stacked), so the input is read once.
    """

    def __init__(self, offset_mask: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> None:
        super().__init__()
        self.offset_mask = offset_mask
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.padding = padding
        self.taps = offset_mask.out_channels // 3

    @classmethod
    def from_deform_bn(cls, dcn: ModulatedDeformConv2d, bn: nn.BatchNorm2d) -> FusedModulatedDeformConv2d:
        if dcn.weight.shape[0] != bn.num_features:
            raise ValueError(f"cannot fold BatchNorm2d({bn.num_features}) into a DCN with {dcn.weight.shape[0]} outputs")
        off, mod = dcn.offset, dcn.modulator
        merged = nn.Conv2d(off.in_channels, off.out_channels + mod.out_channels, off.kernel_size,  # type: ignore[arg-type]
                           off.stride, off.padding, bias=True,  # type: ignore[arg-type]
                           device=off.weight.device, dtype=off.weight.dtype)
        with torch.no_grad():
            merged.weight.copy_(torch.cat([off.weight, mod.weight], 0))
            zeros = off.weight.new_zeros(off.out_channels + mod.out_channels)
            parts = [off.bias if off.bias is not None else zeros[: off.out_channels],
                     mod.bias if mod.bias is not None else zeros[: mod.out_channels]]
            merged.bias.copy_(torch.cat(parts, 0))  # type: ignore[union-attr]
        w, b = _folded(dcn.weight, None, bn)
        return cls(merged, w, b, dcn.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.offset_mask(x)
        k = self.taps
        offset, mask = om[:, : 2 * k], 2.0 * torch.sigmoid(om[:, 2 * k:])
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, padding=self.padding)


def _is_bn(m: nn.Module | None) -> bool:
    return isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.running_mean is not None


def _fuse_attr_pair(module: nn.Module, conv_name: str, bn_name: str) -> bool:
    conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
    if isinstance(conv, nn.Conv2d) and _is_bn(bn):
        fold_bn_into_conv(conv, bn)  # type: ignore[arg-type]
        setattr(module, bn_name, nn.Identity())
        return True
    return False


def _fuse_sequential(seq: nn.Sequential) -> int:
    n = 0
    names = list(seq._modules)
    for prev, cur in zip(names, names[1:]):
        conv, bn = seq._modules[prev], seq._modules[cur]
        if isinstance(conv, nn.Conv2d) and _is_bn(bn) and conv.out_channels == bn.num_features:  # type: ignore[union-attr]
            fold_bn_into_conv(conv, bn)  # type: ignore[arg-type]
            seq._modules[cur] = nn.Identity()
            n += 1
    return n


def _fuse_module(m: nn.Module) -> int:
    """Fold the BatchNorms owned directly by ``m`` (by featherface module type); returns the count."""
    from featherface.models.featherface_v1 import DeformConvBN, SepConvBlock, SpatialGate
    from featherface.models.featherface_v2_ultra import SharedSpatialGate
    from featherface.models.layers import ConvBN

    if isinstance(m, nn.Sequential):  # conv_bn / conv_dw blocks, UltraLightBiFPNLayer.block
        return _fuse_sequential(m)
    if isinstance(m, (ConvBN, SpatialGate, SharedSpatialGate)):
        return int(_fuse_attr_pair(m, "conv", "bn"))
    if isinstance(m, SepConvBlock):  # depthwise -> pointwise(bias) -> BN: fold into pointwise
        return int(_fuse_attr_pair(m, "pointwise", "bn"))
    if isinstance(m, DeformConvBN) and isinstance(m.conv, ModulatedDeformConv2d) and _is_bn(m.bn):
        m.conv = FusedModulatedDeformConv2d.from_deform_bn(m.conv, m.bn)  # type: ignore[arg-type]
        m.bn = nn.Identity()  # type: ignore[assignment]
        return 1
    return 0


def count_batchnorms(model: nn.Module) -> int:
    """Number of ``BatchNorm`` modules in ``model``."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm that follows a conv folded into it.

    ``model`` itself is not modified. The copy computes the same function as ``model.eval()`` (to
    float32 rounding), has no trainable parameters and is meant for inference only: its BatchNorms
    are gone, so it must not be trained. See the module docstring for the folded patterns.
    """
    fused = copy.deepcopy(model).eval()
    n = sum(_fuse_module(m) for m in list(fused.modules()))
    for p in fused.parameters():
        p.requires_grad_(False)
    left = count_batchnorms(fused)
    logger.debug("featherface: folded %d BatchNorm layers (%d left unfused)", n, left)
    return fused
