"""Building blocks shared by the FeatherFace networks.

All tensors are NCHW. Feature maps at pyramid levels P3/P4/P5 have strides 8/16/32 and spatial
sizes ``ceil(H/8)``, ``ceil(H/16)``, ``ceil(H/32)`` for an ``H x W`` input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from featherface._models.fuse import fold_bn_pair
from featherface.detection import RawOutputs

__all__ = [
    "MobileNetV1",
    "ConvBN",
    "DetectionHeads",
    "conv_bn",
    "conv_dw",
    "init_detector_weights",
    "resize_to",
    "channel_deinterleave",
    "channel_shuffle",
    "fast_normalised_weights",
    "concat_levels",
]


def conv_bn(cin: int, cout: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Full 3x3 conv (no bias) + BN + LeakyReLU; keys ``0`` (conv) and ``1`` (BN)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


def conv_dw(cin: int, cout: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Depthwise-separable layer: dw 3x3 + BN + LeakyReLU, pw 1x1 + BN + LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNetV1 x0.25 trunk (213,072 parameters) returning ``(C3, C4, C5)``.

    ``C3: [B, 64, ceil(H/8), ceil(W/8)]``, ``C4: [B, 128, ceil(H/16), .]``,
    ``C5: [B, 256, ceil(H/32), .]``. Parameter names (``stage1.0.0.weight``...) match the ImageNet
    checkpoint, whose classifier (``fc.*``) is not part of this module.
    """

    out_channels = (64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_bn(3, 8, 2),
            conv_dw(8, 16, 1),
            conv_dw(16, 32, 2),
            conv_dw(32, 32, 1),
            conv_dw(32, 64, 2),
            conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(
            conv_dw(64, 128, 2),
            *[conv_dw(128, 128, 1) for _ in range(5)],
        )
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return c3, c4, c5


class ConvBN(nn.Module):
    """``conv -> BN`` with an optional activation; the unit most neck blocks are made of."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        *,
        groups: int = 1,
        bias: bool = False,
        eps: float = 1e-5,
        momentum: float = 0.1,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, 1, kernel // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout, eps=eps, momentum=momentum)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> ConvBN:
        """Fold ``bn`` (eval statistics) into ``conv`` in place, ``bn`` becomes ``nn.Identity``; returns
        ``self``. For inference only (:func:`featherface._models.fuse.fuse_for_inference`)."""
        fold_bn_pair(self, "conv", "bn")
        return self


def init_detector_weights(model: nn.Module) -> None:
    """Detection-style initialisation: Kaiming-normal (fan-out) convs, BN to identity, zero biases.

    PyTorch's default conv init shrinks activations through the 14-layer trunk so that a fresh
    network's outputs barely depend on its input; this keeps the signal alive for training from
    scratch. Deformable-conv offset and modulation predictors are left at zero (set by their own
    ``reset_parameters``), so a fresh DCN is still exactly a plain conv.
    """
    from featherface._models.deform import ModulatedDeformConv2d

    skip: set[int] = set()
    for m in model.modules():
        if isinstance(m, ModulatedDeformConv2d):
            skip.update({id(m.offset), id(m.modulator)})
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in skip:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resize_to(x: torch.Tensor, ref: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Resample ``x`` to the spatial size of ``ref`` (nearest, or bilinear with align_corners=False)."""
    if mode == "nearest":
        return F.interpolate(x, size=ref.shape[-2:], mode="nearest")
    return F.interpolate(x, size=ref.shape[-2:], mode=mode, align_corners=False)


def channel_deinterleave(x: torch.Tensor) -> torch.Tensor:
    """The V1 "channel shuffle" with 2 groups: even channels first, then odd ones.

    ``[B, C, H, W] -> [B, C, H, W]`` with output channels ``[0, 2, 4, ..., 1, 3, 5, ...]``.
    """
    b, c, h, w = x.shape
    return x.reshape(b, c // 2, 2, h, w).transpose(1, 2).reshape(b, c, h, w)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle (interleave): ``[B, C, H, W]`` with C viewed as ``(groups, C/groups)``."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def fast_normalised_weights(w: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """EfficientDet fast normalised fusion: ``relu(w) / (sum(relu(w)) + eps)``."""
    w = F.relu(w)
    return w / (w.sum() + eps)


class DetectionHeads(nn.Module):
    """1x1 class / box / landmark convs for one level, ``anchors`` anchors per location.

    Output rows are ordered y, x, anchor (the order of :func:`featherface._ops.priors.generate_priors`):
    ``cls [B, H*W*A, 2]``, ``box [B, H*W*A, 4]``, ``ldm [B, H*W*A, 10]``.
    """

    def __init__(self, channels: int, anchors: int) -> None:
        super().__init__()
        self.anchors = anchors
        self.cls = nn.Conv2d(channels, anchors * 2, 1)
        self.box = nn.Conv2d(channels, anchors * 4, 1)
        self.ldm = nn.Conv2d(channels, anchors * 10, 1)

    @torch.no_grad()
    def init_class_prior(self, face_probability: float) -> None:
        """Set the class biases so that every anchor starts at ``face_probability`` (e.g. 0.01).

        The focal-loss prior (Lin et al. 2017): with zero biases a fresh head says 0.5 everywhere, and
        the first thousands of steps go into pushing the ~99.9% background anchors down instead of
        into separating faces from background. Logit layout per anchor: ``(background, face)``.
        """
        if not 0.0 < face_probability < 1.0:
            raise ValueError(f"face_probability must be in (0, 1), got {face_probability}")
        bias = self.cls.bias.view(self.anchors, 2)
        bias[:, 0] = 0.0
        bias[:, 1] = math.log(face_probability / (1.0 - face_probability))

    @staticmethod
    def _flatten(t: torch.Tensor, k: int) -> torch.Tensor:
        b = t.shape[0]
        return t.permute(0, 2, 3, 1).reshape(b, -1, k)

    def forward(self, x: torch.Tensor) -> RawOutputs:
        return (
            self._flatten(self.box(x), 4),
            self._flatten(self.cls(x), 2),
            self._flatten(self.ldm(x), 10),
        )


def concat_levels(
    outs: list[RawOutputs],
) -> RawOutputs:
    """Concatenate per-level ``(loc, logits, landmarks)`` in P3, P4, P5 order along the prior axis."""
    loc = torch.cat([o[0] for o in outs], dim=1)
    cls = torch.cat([o[1] for o in outs], dim=1)
    ldm = torch.cat([o[2] for o in outs], dim=1)
    return loc, cls, ldm
