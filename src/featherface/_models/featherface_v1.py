"""FeatherFace V1, the authors' network: 592,371 parameters.

The network of the FeatherFace paper (Kim, Jung, Kim, "FeatherFace: Robust and Lightweight Face
Detection via Optimal Feature Integration", *Electronics* 2025) as the authors' code builds it:
``RetinaFace(cfg_mnet)`` (``models/retinaface.py``, blocks in ``models/net.py``) of github
fokouarnaud/FeatherFace in the early commits that also hold the reference weights
``weights/mobilenet0.25_Final.pth`` (e.g. d9c5756; later commits change the network). It is
reproduced layer for layer so that those weights load unchanged. The paper's "0.49 M" is the ``thop``
count of this same network (:func:`featherface._models.thop_equivalent_parameters`).

MobileNetV1-0.25 -> CBAM (+residual, ReLU) -> BiFPN x3 (64 ch) -> CBAM (+residual, ReLU) ->
SSH of modulated deformable convs -> channel-shuffle block -> 1x1 heads, independently per level.
Input: BGR, mean (104, 117, 123) subtracted, NCHW float. ``forward`` returns raw
``(loc[B, N, 4], logits[B, N, 2], landmarks[B, N, 10])``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from featherface._models.config import ModelConfig
from featherface._models.deform import ModulatedDeformConv2d
from featherface._models.fuse import fold_bn_pair, is_foldable_bn
from featherface._models.layers import (
    ConvBN,
    DetectionHeads,
    MobileNetV1,
    channel_deinterleave,
    concat_levels,
    fast_normalised_weights,
    init_detector_weights,
    resize_to,
)
from featherface.detection import RawOutputs

__all__ = [
    "FeatherFaceV1",
    "ChannelGate",
    "SpatialGate",
    "ResidualCBAM",
    "SepConvBlock",
    "BiFPNLayer",
    "BiFPN",
    "DeformConvBN",
    "DeformSSH",
    "ShuffleBlock",
    "maxpool_same",
]

Levels = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class ChannelGate(nn.Module):
    """CBAM channel attention: shared MLP (with biases) on avg- and max-pooled descriptors."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3))
        mx = x.amax(dim=(2, 3))
        att = self.fc2(F.relu(self.fc1(avg))) + self.fc2(F.relu(self.fc1(mx)))
        return x * torch.sigmoid(att)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention on ``[max, mean]`` over channels: 7x7 conv + BN (momentum 0.01)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, 1, 3, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))

    def fuse(self) -> SpatialGate:
        """Fold ``bn`` into the 7x7 ``conv`` in place (``bn`` becomes ``nn.Identity``); returns ``self``."""
        fold_bn_pair(self, "conv", "bn")
        return self


class ResidualCBAM(nn.Module):
    """``relu(CBAM(x) + x)``, CBAM = channel gate then spatial gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.spatial_gate(self.channel_gate(x)) + x)


class SepConvBlock(nn.Module):
    """BiFPN node: depthwise 3x3 (no bias) -> pointwise 1x1 (bias) -> BN(eps 1e-3, momentum 0.01)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=True)
        self.bn = nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(x)))

    def fuse(self) -> SepConvBlock:
        """Fold ``bn`` into ``pointwise`` in place (``bn`` becomes ``nn.Identity``); returns ``self``."""
        fold_bn_pair(self, "pointwise", "bn")
        return self


def maxpool_same(x: torch.Tensor) -> torch.Tensor:
    """3x3 / stride-2 max-pool with TensorFlow "same" zero padding (output ``ceil(n/2)``).

    Padding is 0 before / 1 after for even sizes and 1 / 1 for odd sizes, filled with 0 (not -inf),
    as in the reference.
    """
    h, w = x.shape[-2:]
    x = F.pad(x, (w % 2, 1, h % 2, 1), mode="constant", value=0.0)
    return F.max_pool2d(x, 3, 2)


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class BiFPNLayer(nn.Module):
    """One 3-level BiFPN layer with fast normalised fusion (EfficientDet).

    The first layer projects ``(C3, C4, C5)`` (64/128/256 ch) to the BiFPN width and uses separate
    projections of C4 and C5 for the bottom-up skip inputs.
    """

    def __init__(self, width: int, in_channels: tuple[int, int, int] | None) -> None:
        super().__init__()
        self.first = in_channels is not None
        self.conv4_up = SepConvBlock(width)
        self.conv3_up = SepConvBlock(width)
        self.conv4_down = SepConvBlock(width)
        self.conv5_down = SepConvBlock(width)
        self.p4_w1 = nn.Parameter(torch.ones(2))
        self.p3_w1 = nn.Parameter(torch.ones(2))
        self.p4_w2 = nn.Parameter(torch.ones(3))
        # 3 entries, only 2 used: the normalisation divides by all three (reference behaviour)
        self.p5_w2 = nn.Parameter(torch.ones(3))
        if in_channels is not None:
            c3, c4, c5 = in_channels
            bn = {"eps": 1e-3, "momentum": 0.01, "bias": True}
            self.proj_p3 = ConvBN(c3, width, 1, **bn)
            self.proj_p4 = ConvBN(c4, width, 1, **bn)
            self.proj_p5 = ConvBN(c5, width, 1, **bn)
            self.proj_p4_skip = ConvBN(c4, width, 1, **bn)
            self.proj_p5_skip = ConvBN(c5, width, 1, **bn)

    def forward(self, feats: Levels) -> Levels:
        if self.first:
            c3, c4, c5 = feats
            p3, p4, p5 = self.proj_p3(c3), self.proj_p4(c4), self.proj_p5(c5)
            p4_skip, p5_skip = self.proj_p4_skip(c4), self.proj_p5_skip(c5)
        else:
            p3, p4, p5 = feats
            p4_skip, p5_skip = p4, p5
        w = fast_normalised_weights(self.p4_w1)
        p4_td = self.conv4_up(_swish(w[0] * p4 + w[1] * resize_to(p5, p4)))
        w = fast_normalised_weights(self.p3_w1)
        p3_out = self.conv3_up(_swish(w[0] * p3 + w[1] * resize_to(p4_td, p3)))
        w = fast_normalised_weights(self.p4_w2)
        p4_out = self.conv4_down(_swish(w[0] * p4_skip + w[1] * p4_td + w[2] * maxpool_same(p3_out)))
        w = fast_normalised_weights(self.p5_w2)
        p5_out = self.conv5_down(_swish(w[0] * p5_skip + w[1] * maxpool_same(p4_out)))
        return p3_out, p4_out, p5_out


class BiFPN(nn.Module):
    def __init__(self, width: int, in_channels: tuple[int, int, int], num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [BiFPNLayer(width, in_channels if i == 0 else None) for i in range(num_layers)]
        )

    def forward(self, feats: Levels) -> Levels:
        for layer in self.layers:
            feats = layer(feats)
        return feats


class DeformConvBN(nn.Module):
    """DCNv2 3x3 + BN (+ optional LeakyReLU 0.1)."""

    def __init__(self, cin: int, cout: int, leaky: bool) -> None:
        super().__init__()
        self.conv = ModulatedDeformConv2d(cin, cout)
        self.bn = nn.BatchNorm2d(cout)
        self.leaky = leaky

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.leaky_relu(x, 0.1) if self.leaky else x

    def fuse(self) -> DeformConvBN:
        """Replace ``conv`` by :meth:`ModulatedDeformConv2d.fuse_bn` of ``bn`` (a
        :class:`~featherface._models.deform.FusedModulatedDeformConv2d`) and ``bn`` by ``nn.Identity``, in
        place; returns ``self``. A second call does nothing."""
        if isinstance(self.conv, ModulatedDeformConv2d) and is_foldable_bn(self.bn):
            self.conv = self.conv.fuse_bn(self.bn)  # type: ignore[assignment]
            self.bn = nn.Identity()  # type: ignore[assignment]
        return self


class DeformSSH(nn.Module):
    """SSH context module made entirely of DCNv2 convs; branches C/2, C/4, C/4, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half, quarter = channels // 2, channels // 4
        self.branch_a = DeformConvBN(channels, half, leaky=False)
        self.branch_b1 = DeformConvBN(channels, quarter, leaky=True)
        self.branch_b2 = DeformConvBN(quarter, quarter, leaky=False)
        self.branch_c1 = DeformConvBN(quarter, quarter, leaky=True)
        self.branch_c2 = DeformConvBN(quarter, quarter, leaky=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch_a(x)
        b1 = self.branch_b1(x)
        b = self.branch_b2(b1)
        c = self.branch_c2(self.branch_c1(b1))
        return F.relu(torch.cat([a, b, c], dim=1))


class ShuffleBlock(nn.Module):
    """De-interleave channels, 1x1 C->C/2 + BN, dw 3x3 + BN, 1x1 C/2->C + BN, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = channels // 2
        self.reduce = ConvBN(channels, mid, 1)
        self.depthwise = ConvBN(mid, mid, 3, groups=mid)
        self.expand = ConvBN(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channel_deinterleave(x)
        return F.relu(self.expand(self.depthwise(self.reduce(x))))


class FeatherFaceV1(nn.Module):
    """FeatherFace V1 (authors' release). See module docstring for the data flow."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.arch != "featherface_v1":
            raise ValueError(f"FeatherFaceV1 needs arch 'featherface_v1', got {config.arch!r}")
        self.config = config
        c, r = config.width, config.cbam_reduction
        self.backbone = MobileNetV1()
        self.backbone_attention = nn.ModuleList(
            [ResidualCBAM(ch, r) for ch in MobileNetV1.out_channels]
        )
        self.bifpn = BiFPN(c, MobileNetV1.out_channels, config.bifpn_layers)
        self.neck_attention = nn.ModuleList([ResidualCBAM(c, r) for _ in range(3)])
        self.context = nn.ModuleList([DeformSSH(c) for _ in range(3)])
        self.shuffle = nn.ModuleList([ShuffleBlock(c) for _ in range(3)])
        self.heads = nn.ModuleList([DetectionHeads(c, a) for a in config.priors.anchors_per_level])
        init_detector_weights(self)

    def forward(self, x: torch.Tensor) -> RawOutputs:
        """``x[B, 3, H, W]`` (BGR minus mean) -> ``(loc[B,N,4], logits[B,N,2], landmarks[B,N,10])``."""
        return self.forward_head(self.backbone(x))

    def forward_head(self, feats: Levels) -> RawOutputs:
        """Everything after the backbone: ``(C3[B,64,H/8,W/8], C4[B,128,H/16,W/16], C5[B,256,H/32,W/32])``
        from :class:`MobileNetV1` -> raw ``(loc, logits, landmarks)`` as :meth:`forward`.

        Lets a student that shares this network's frozen backbone reuse one backbone pass
        (:mod:`featherface.train.loop`)."""
        feats = tuple(att(f) for att, f in zip(self.backbone_attention, feats))
        feats = self.bifpn(feats)  # type: ignore[arg-type]
        outs = []
        for i, f in enumerate(feats):
            f = self.neck_attention[i](f)
            f = self.shuffle[i](self.context[i](f))
            outs.append(self.heads[i](f))
        return concat_levels(outs)
