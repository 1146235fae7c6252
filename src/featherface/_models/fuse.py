"""Inference-time BatchNorm folding: :func:`fuse_for_inference`.

In eval mode a BatchNorm is an affine map per channel, ``y = (x - mean) * g / sqrt(var + eps) + b``.
When it directly follows a convolution it can be folded into that convolution's weight and bias,
which removes one pass over every feature map.

This module knows no network. :func:`fuse_for_inference` walks a copy of the module tree, children
first, and

- replaces every module that defines a ``fuse()`` method by what that method returns (the module
  folds what it owns, e.g. its ``conv -> BN`` pair, and returns itself or a replacement; the
  featherface building blocks define it, see :mod:`featherface._models`);
- folds ``conv -> BN`` pairs that are consecutive children of an ``nn.Sequential`` (the MobileNetV1
  ``conv_bn`` / ``conv_dw`` blocks, the V2 Ultra BiFPN block ``dw -> pw -> BN -> ReLU``).

The other names here are the generic helpers those ``fuse()`` methods are made of:
:func:`fold_bn_into_conv`, :func:`fold_bn_pair`, :func:`fold_sequential`,
:func:`folded_weight_and_bias` (layer-specific fused modules live next to their layer, e.g.
:class:`featherface._models.deform.FusedModulatedDeformConv2d`).

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

logger = logging.getLogger(__name__)

__all__ = [
    "fuse_for_inference",
    "fold_bn_into_conv",
    "fold_bn_pair",
    "fold_sequential",
    "folded_weight_and_bias",
    "is_foldable_bn",
    "count_batchnorms",
]


def is_foldable_bn(m: nn.Module | None) -> bool:
    """Whether ``m`` is a ``BatchNorm2d`` with running statistics (which eval mode uses)."""
    return isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.running_mean is not None


def folded_weight_and_bias(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight', bias')`` of ``bn(conv(x))`` for a conv with ``weight[O, ...]`` and optional ``bias[O]``.

    Computed in float64, returned in ``weight``'s dtype.
    """
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
    w, b = folded_weight_and_bias(conv.weight, conv.bias, bn)
    conv.weight = nn.Parameter(w, requires_grad=False)
    conv.bias = nn.Parameter(b, requires_grad=False)


def fold_bn_pair(module: nn.Module, conv_name: str, bn_name: str) -> bool:
    """Fold ``module.<bn_name>`` into ``module.<conv_name>`` in place and set the BN to ``nn.Identity``.

    Does nothing (returns ``False``) unless the first is an ``nn.Conv2d`` and the second a
    ``BatchNorm2d`` with running statistics; so a second call is a no-op.
    """
    conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
    if isinstance(conv, nn.Conv2d) and is_foldable_bn(bn):
        fold_bn_into_conv(conv, bn)  # type: ignore[arg-type]
        setattr(module, bn_name, nn.Identity())
        return True
    return False


def fold_sequential(seq: nn.Sequential) -> int:
    """Fold every ``conv -> BN`` pair of consecutive children of ``seq`` in place; returns the count."""
    n = 0
    children = list(seq.named_children())
    for (_, conv), (name, bn) in zip(children, children[1:]):
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and is_foldable_bn(bn) \
                and conv.out_channels == bn.num_features:
            fold_bn_into_conv(conv, bn)
            setattr(seq, name, nn.Identity())
            n += 1
    return n


def count_batchnorms(model: nn.Module) -> int:
    """Number of ``BatchNorm`` modules in ``model``."""
    return sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)) for m in model.modules())


def _has_fuse(m: nn.Module) -> bool:
    return callable(getattr(type(m), "fuse", None))


def _fuse_tree(m: nn.Module, done: dict[int, nn.Module]) -> nn.Module:
    """Fuse ``m``'s subtree children first; returns ``m`` or its replacement. ``done`` maps the id of
    every module already visited to its result, so a module shared by several parents is fused once
    and its replacement stays shared."""
    if id(m) in done:
        return done[id(m)]
    # every child slot, a module registered under two names included (``named_children`` lists it once)
    for name, child in list(m._modules.items()):
        if child is not None:
            new = _fuse_tree(child, done)
            if new is not child:
                setattr(m, name, new)
    out = m
    if isinstance(m, nn.Sequential):
        fold_sequential(m)
    if _has_fuse(m):
        out = m.fuse()  # type: ignore[operator]
        if not isinstance(out, nn.Module):
            raise TypeError(f"{type(m).__name__}.fuse() returned {type(out).__name__}, not an nn.Module")
    done[id(m)] = out
    return out


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm that follows a conv folded into it.

    ``model`` itself is not modified. The copy computes the same function as ``model.eval()`` (to
    float32 rounding), has no trainable parameters and is meant for inference only: its BatchNorms
    are gone, so it must not be trained. See the module docstring for the folded patterns.
    """
    fused = copy.deepcopy(model).eval()
    before = count_batchnorms(fused)
    fused = _fuse_tree(fused, {}).eval()
    for p in fused.parameters():
        p.requires_grad_(False)
    left = count_batchnorms(fused)
    logger.debug("featherface: folded %d BatchNorm layers (%d left unfused)", before - left, left)
    return fused
