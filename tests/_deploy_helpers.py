"""Helpers shared by the deployment tests (fusion, ONNX export, backends). Not a test module."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from featherface._models.deform import ModulatedDeformConv2d
from featherface._models.layers import DetectionHeads


@torch.no_grad()
def make_realistic_(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give ``net`` random but "trained-looking" weights, in place.

    A freshly initialised network has identity BatchNorms, zero deformable offsets and outputs of
    about 1e-6, which would make every comparison trivially pass. Here every BatchNorm gets random
    statistics and affine parameters, convs get fan-in scaled weights and biases, the deformable
    offset/modulation predictors are non-zero (offsets of about a pixel) and the heads produce
    logits spread over several units, so scores are well separated and the outputs depend strongly
    on the input. Such a network amplifies float32 rounding more than the default initialisation:
    compare implementations against a float64 reference (see tests/test_export.py).
    """
    g = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    def uniform_(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    dcn_preds = set()
    for m in net.modules():
        if isinstance(m, ModulatedDeformConv2d):
            dcn_preds |= {id(m.offset), id(m.modulator)}
            normal_(m.weight, math.sqrt(2.0 / m.weight[0].numel()))
            normal_(m.offset.weight, 0.3 / math.sqrt(m.offset.weight[0].numel()))
            normal_(m.offset.bias, 0.5)
            normal_(m.modulator.weight, 0.3 / math.sqrt(m.modulator.weight[0].numel()))
            normal_(m.modulator.bias, 0.3)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in dcn_preds:
            normal_(m.weight, math.sqrt(2.0 / m.weight[0].numel()))
            if m.bias is not None:
                normal_(m.bias, 0.1)
        elif isinstance(m, nn.Linear):
            normal_(m.weight, math.sqrt(1.0 / m.weight.shape[1]))
            if m.bias is not None:
                normal_(m.bias, 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            normal_(m.running_mean, 0.3)
            uniform_(m.running_var, 0.5, 2.0)
            uniform_(m.weight, 0.6, 1.4)
            normal_(m.bias, 0.2)
    # calibrate the heads on smooth random images: logits std ~1.5, offsets std ~0.4
    net.eval()
    img = torch.rand((2, 3, 12, 16), generator=g) * 255.0 - 115.0
    x = torch.nn.functional.interpolate(img, size=(96, 128), mode="bilinear", align_corners=False)
    loc, logits, ldm = net(x)
    heads = [m for m in net.modules() if isinstance(m, DetectionHeads)]
    for out, attr, target in ((loc, "box", 0.4), (logits, "cls", 1.5), (ldm, "ldm", 0.4)):
        k = target / float(out.std())
        for h in heads:
            conv = getattr(h, attr)
            conv.weight.mul_(k)
            conv.bias.mul_(k)
    return net


def read_bgr(path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, path
    return img


@torch.no_grad()
def randomize_batchnorms_(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random non-trivial BatchNorm statistics and affine parameters (and non-zero deformable
    offsets/modulation), on top of the network's own initialisation; in place, eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2.0 + 0.2)
            m.weight.copy_(torch.randn(n, generator=g) * 0.5 + 1.0)
            m.bias.copy_(torch.randn(n, generator=g) * 0.3)
        elif isinstance(m, ModulatedDeformConv2d):
            for conv in (m.offset, m.modulator):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.02)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.5)
    return net.eval()
