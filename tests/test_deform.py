"""Pure-PyTorch modulated deformable conv against a direct-summation reference and torchvision."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from featherface._models.deform import ModulatedDeformConv2d
from featherface._ops.deform_conv import modulated_deform_conv2d


def _bilinear_zero(img: np.ndarray, y: float, x: float) -> np.ndarray:
    """DCNv2 sampling: bilinear, each out-of-range corner contributes 0."""
    c, h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return np.zeros(c)
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    out = np.zeros(c)
    for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                       (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < h and 0 <= xx < w:
            out += wt * img[:, yy, xx]
    return out


def _reference(x, offset, mask, weight, pad=1):  # type: ignore[no-untyped-def]
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    out = np.zeros((b, o, ho, wo))
    for n in range(b):
        for i in range(ho):
            for j in range(wo):
                cols = []
                for ky in range(kh):
                    for kx in range(kw):
                        k = ky * kw + kx
                        py = i - pad + ky + offset[n, 2 * k, i, j]
                        px = j - pad + kx + offset[n, 2 * k + 1, i, j]
                        cols.append(_bilinear_zero(x[n], py, px) * mask[n, k, i, j])
                col = np.stack(cols, 1)  # [C, K]
                out[n, :, i, j] = np.einsum("ck,ock->o", col, weight.reshape(o, c, kh * kw))
    return out


def test_matches_direct_summation_reference() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 7))
    offset = rng.normal(scale=2.0, size=(2, 18, 6, 7))  # pushes many taps outside the image
    mask = rng.uniform(0, 2, size=(2, 9, 6, 7))
    weight = rng.normal(size=(4, 3, 3, 3))
    ref = _reference(x, offset, mask, weight)
    got = modulated_deform_conv2d(*(torch.from_numpy(a) for a in (x, offset, mask, weight)))
    assert np.abs(got.numpy() - ref).max() < 1e-9


def test_zero_offsets_equal_plain_conv() -> None:
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(5, 6)
    x = torch.randn(2, 5, 9, 11)
    expected = F.conv2d(x, layer.weight, padding=1)
    assert torch.allclose(layer(x), expected, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_direct_summation_with_bias_and_strong_offsets(seed: int) -> None:
    """The configuration of the torchvision cross-check below (bias, 8 channels, 13x10, offsets up
    to several pixels, masks in [0, 2]) against the direct-summation reference, without torchvision."""
    rng = np.random.default_rng(100 + seed)
    b, c, h, w, o = 2, 8, 13, 10, 6
    x = rng.normal(size=(b, c, h, w))
    offset = rng.normal(size=(b, 18, h, w)) * 3
    mask = rng.uniform(0, 2, size=(b, 9, h, w))
    weight = rng.normal(size=(o, c, 3, 3)) / math.sqrt(c * 9)
    bias = rng.normal(size=o)
    ref = _reference(x, offset, mask, weight) + bias[None, :, None, None]
    got = modulated_deform_conv2d(*(torch.from_numpy(a) for a in (x, offset, mask, weight, bias)), padding=1)
    assert np.abs(got.numpy() - ref).max() < 1e-9


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                    reason="torchvision not installed (not in the dev extra, which must keep a CPU-only torch; "
                           "install the torchvision build matching your torch to run this cross-check)")
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torchvision(seed: int, dtype: torch.dtype) -> None:
    from torchvision.ops import deform_conv2d

    g = torch.Generator().manual_seed(seed)
    b, c, h, w, o = 2, 8, 13, 10, 6
    x = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    offset = torch.randn(b, 18, h, w, generator=g, dtype=dtype) * 3
    mask = torch.rand(b, 9, h, w, generator=g, dtype=dtype) * 2
    # weights at the scale of a conv's default init (std ~ 1/sqrt(fan_in)), as in a real network
    weight = torch.randn(o, c, 3, 3, generator=g, dtype=dtype) / math.sqrt(c * 9)
    bias = torch.randn(o, generator=g, dtype=dtype)
    ref = deform_conv2d(x, offset, weight, bias, padding=(1, 1), mask=mask)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, padding=1)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert (got - ref).abs().max().item() <= tol


def test_channel_mismatch_is_reported() -> None:
    with pytest.raises(ValueError, match="input channels"):
        modulated_deform_conv2d(torch.zeros(1, 3, 4, 4), torch.zeros(1, 18, 4, 4),
                                torch.zeros(1, 9, 4, 4), torch.zeros(2, 4, 3, 3))
