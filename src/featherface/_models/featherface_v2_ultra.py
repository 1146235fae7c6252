"""FeatherFace V2 Ultra, width C = 20.

The "V2 Ultra" variant of the FeatherFace repository (github fokouarnaud/FeatherFace:
``models/retinaface_v2_ultra.py``, ``models/modules_v2_ultra.py``, config ``cfg_mnet_v2``; since removed
there, and not part of the FeatherFace paper). That code was never trained on real data; this project
rebuilds the network and trains it (distilled from V1, :mod:`featherface.train.distill`).

Same backbone, anchors and output format as V1, with a much thinner neck:
shared-spatial CBAM on the backbone -> 2 weight-shared "UltraLight" BiFPN layers -> shared CBAM ->
per level: (gated) grouped-conv SSH, channel shuffle, 3x3 head stem, 1x1 heads.

Differences from that code, all deliberate: every submodule is registered (there the techniques' modules
sat in a plain ``dict``, so they were never trained, saved or exported), and the "dynamic weight
sharing" gate is a differentiable per-image soft blend ``gamma * (x + s * (SSH(x) - x))`` instead of a
batch-dependent Python ``if`` (there: run the SSH and scale by the gate when the batch mean of the gate
exceeds 0.5, else skip the SSH). Each of the five techniques, described where it is implemented below,
is a switch in :class:`featherface._models.config.V2UltraTechniques`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from featherface._models.config import ModelConfig, V2UltraTechniques
from featherface._models.fuse import fold_bn_pair
from featherface._models.layers import (
    ConvBN,
    DetectionHeads,
    MobileNetV1,
    channel_shuffle,
    concat_levels,
    fast_normalised_weights,
    init_detector_weights,
    resize_to,
)
from featherface.detection import RawOutputs

__all__ = [
    "FeatherFaceV2Ultra",
    "SharedSpatialGate",
    "LightChannelGate",
    "SharedCBAM",
    "UltraLightBiFPNLayer",
    "GroupedSSH",
    "SoftSharingGate",
    "HeadStem",
    "maxpool_sym",
    "smart_feature_reuse",
    "multi_scale_intelligence",
    "progressive_enhancement",
]

Levels = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _shuffle_groups(channels: int, preferred: int) -> int:
    for g in (preferred, 4, 2):
        if g <= preferred and channels % g == 0:
            return g
    return 1


class SharedSpatialGate(nn.Module):
    """7x7 conv (no bias) + BN on ``[mean, max]`` over channels; one instance serves all levels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, 1, 3, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))

    def fuse(self) -> SharedSpatialGate:
        """Fold ``bn`` into the 7x7 ``conv`` in place (``bn`` becomes ``nn.Identity``); returns ``self``."""
        fold_bn_pair(self, "conv", "bn")
        return self


class LightChannelGate(nn.Module):
    """Channel gate with a bias-free MLP ``C -> max(C/r, 4) -> C``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg, mx = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
        att = self.fc2(F.relu(self.fc1(avg))) + self.fc2(F.relu(self.fc1(mx)))
        return x * torch.sigmoid(att)[:, :, None, None]


class SharedCBAM(nn.Module):
    """Per-level channel gates + one shared spatial gate, with residual and ReLU.

    With ``multiply`` the "attention multiplication" technique is applied (no parameters: the same
    gates run four times per level):
    ``x0 = CBAM(f) + f``, then three rounds ``a_i = CBAM(acc_{i-1})``, ``acc_i = acc_{i-1} + a_i``;
    the output is ``relu(a_3)``.
    """

    def __init__(self, channels: tuple[int, ...], reduction: int, multiply: bool) -> None:
        super().__init__()
        self.channel_gates = nn.ModuleList([LightChannelGate(c, reduction) for c in channels])
        self.spatial_gate = SharedSpatialGate()
        self.multiply = multiply

    def _cbam(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.channel_gates[i](x))

    def forward(self, feats: Levels) -> Levels:
        outs = []
        for i, f in enumerate(feats):
            x = self._cbam(i, f) + f
            if self.multiply:
                acc = x
                for _ in range(3):
                    x = self._cbam(i, acc)
                    acc = acc + x
            outs.append(F.relu(x))
        return outs[0], outs[1], outs[2]


def maxpool_sym(x: torch.Tensor) -> torch.Tensor:
    """3x3 / stride-2 max-pool with symmetric padding 1 (output ``ceil(n/2)``)."""
    return F.max_pool2d(x, 3, 2, 1)


class UltraLightBiFPNLayer(nn.Module):
    """BiFPN layer whose four fusion nodes share one separable block and one 3-entry weight vector.

    The node formulas follow the reference code exactly, including which entry of the normalised weights
    ``w`` (:func:`~featherface._models.layers.fast_normalised_weights`) each node uses, so that in general no
    node's weights sum to 1: ``P4_td = w0 P4 + w1 up(P5)``; ``P3 = w0 P3 + w2 up(P4_td)``;
    ``P4 = w0 P4_td + w1 pool(P3)``; ``P5 = w0 P5 + w2 pool(P4)`` (``up`` nearest, ``pool``
    :func:`maxpool_sym`), each sum then passed through the shared block.
    """

    def __init__(self, width: int, in_channels: tuple[int, int, int] | None) -> None:
        super().__init__()
        self.first = in_channels is not None
        self.block = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1, groups=width, bias=False),
            nn.Conv2d(width, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.fusion = nn.Parameter(torch.ones(3))
        if in_channels is not None:
            self.proj = nn.ModuleList([ConvBN(c, width, 1) for c in in_channels])

    def forward(self, feats: Levels) -> Levels:
        p3, p4, p5 = feats
        if self.first:
            p3, p4, p5 = self.proj[0](p3), self.proj[1](p4), self.proj[2](p5)
        w = fast_normalised_weights(self.fusion)
        p4_td = self.block(w[0] * p4 + w[1] * resize_to(p5, p4))
        p3 = self.block(w[0] * p3 + w[2] * resize_to(p4_td, p3))
        p4 = self.block(w[0] * p4_td + w[1] * maxpool_sym(p3))
        p5 = self.block(w[0] * p5 + w[2] * maxpool_sym(p4))
        return p3, p4, p5


def smart_feature_reuse(feats: Levels) -> Levels:
    """The "smart feature reuse" technique (no parameters), on the BiFPN outputs.

    A fixed cross-level blend, ``P3 + 0.3 P4 + 0.2 P5``, ``P4 + 0.2 P3 + 0.2 P5``,
    ``P5 + 0.3 P4 + 0.2 P3``, every term resampled bilinearly to the level's size and computed from the
    inputs.
    """
    p3, p4, p5 = feats
    b = "bilinear"
    return (
        p3 + 0.3 * resize_to(p4, p3, b) + 0.2 * resize_to(p5, p3, b),
        p4 + 0.2 * resize_to(p3, p4, b) + 0.2 * resize_to(p5, p4, b),
        p5 + 0.3 * resize_to(p4, p5, b) + 0.2 * resize_to(p3, p5, b),
    )


def multi_scale_intelligence(feats: Levels) -> Levels:
    """The "multi-scale intelligence" technique (no parameters), after the second CBAM.

    Another fixed cross-level blend, ``P3 + 0.4 P4``, ``P4 + 0.3 P3 + 0.3 P5``, ``P5 + 0.4 P4``
    (bilinear resampling), computed from the inputs.
    """
    p3, p4, p5 = feats
    b = "bilinear"
    return (
        p3 + 0.4 * resize_to(p4, p3, b),
        p4 + 0.3 * resize_to(p3, p4, b) + 0.3 * resize_to(p5, p4, b),
        p5 + 0.4 * resize_to(p4, p5, b),
    )


def progressive_enhancement(x: torch.Tensor) -> torch.Tensor:
    """The "progressive enhancement" technique (no parameters), just before each level's head.

    Three rounds ``i = 0, 1, 2`` of ``x + 0.1 tanh(x)``, a channel shuffle (8 groups, else 4 or 2: 4 at
    C = 20) and a gain ``1 + 0.1 i``.
    """
    groups = _shuffle_groups(x.shape[1], 8)
    for i in range(3):
        x = x + 0.1 * torch.tanh(x)
        x = channel_shuffle(x, groups)
        x = x * (1.0 + 0.1 * i)
    return x


class GroupedSSH(nn.Module):
    """SSH with plain (grouped) 3x3 convs + BN; branches C/2, C/4, C/4; ReLU on the concat."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        half, quarter = channels // 2, channels // 4

        def g(cin: int, cout: int) -> int:
            return groups if cin % groups == 0 and cout % groups == 0 else 1

        leaky = nn.LeakyReLU(0.1, inplace=True)
        self.branch_a = ConvBN(channels, half, 3, groups=g(channels, half))
        self.branch_b1 = ConvBN(channels, quarter, 3, groups=g(channels, quarter), act=leaky)
        self.branch_b2 = ConvBN(quarter, quarter, 3, groups=g(quarter, quarter))
        self.branch_c1 = ConvBN(quarter, quarter, 3, groups=g(quarter, quarter), act=leaky)
        self.branch_c2 = ConvBN(quarter, quarter, 3, groups=g(quarter, quarter))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch_b1(x)
        return F.relu(
            torch.cat([self.branch_a(x), self.branch_b2(b1), self.branch_c2(self.branch_c1(b1))], 1)
        )


class SoftSharingGate(nn.Module):
    """Differentiable "dynamic weight sharing" gate, one instance shared by the three levels.

    ``s = sigmoid(w . GAP(x))`` per image (``[B, 1, 1, 1]``); output
    ``gamma * (x + s * (SSH(x) - x))``. ``w`` (C params, no bias) and ``gamma`` (C, init 1).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, 1, bias=False)
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.score(x.mean(dim=(2, 3), keepdim=True)))
        return self.gamma[None, :, None, None] * (x + s * (context - x))


class HeadStem(nn.Module):
    """3x3 conv C -> C/2 (no bias) + BN + ReLU followed by the 1x1 detection heads."""

    def __init__(self, channels: int, anchors: int) -> None:
        super().__init__()
        self.stem = ConvBN(channels, channels // 2, 3, act=nn.ReLU(inplace=True))
        self.heads = DetectionHeads(channels // 2, anchors)

    def forward(self, x: torch.Tensor) -> RawOutputs:
        return self.heads(self.stem(x))


class FeatherFaceV2Ultra(nn.Module):
    """V2 Ultra student network. ``forward`` returns raw ``(loc, logits, landmarks)`` like V1."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.arch != "featherface_v2_ultra":
            raise ValueError(f"FeatherFaceV2Ultra needs arch 'featherface_v2_ultra', got {config.arch!r}")
        self.config = config
        t: V2UltraTechniques = config.techniques or V2UltraTechniques()
        self.techniques = t
        c, r = config.width, config.cbam_reduction
        self.backbone = MobileNetV1()
        self.backbone_attention = SharedCBAM(MobileNetV1.out_channels, r, t.attention_multiplication)
        self.bifpn = nn.ModuleList(
            [
                UltraLightBiFPNLayer(c, MobileNetV1.out_channels if i == 0 else None)
                for i in range(config.bifpn_layers)
            ]
        )
        self.neck_attention = SharedCBAM((c, c, c), r, multiply=False)
        self.context = nn.ModuleList([GroupedSSH(c, config.ssh_groups) for _ in range(3)])
        self.gate = SoftSharingGate(c) if t.dynamic_weight_sharing else None
        self.shuffle_groups = _shuffle_groups(c, 4)
        self.heads = nn.ModuleList([HeadStem(c, a) for a in config.priors.anchors_per_level])
        init_detector_weights(self)

    def forward(self, x: torch.Tensor) -> RawOutputs:
        """``x[B, 3, H, W]`` (BGR minus mean) -> ``(loc[B,N,4], logits[B,N,2], landmarks[B,N,10])``."""
        return self.forward_head(self.backbone(x))

    def forward_head(self, feats: Levels) -> RawOutputs:
        """Everything after the backbone: ``(C3[B,64,H/8,W/8], C4[B,128,H/16,W/16], C5[B,256,H/32,W/32])``
        from :class:`MobileNetV1` -> raw ``(loc, logits, landmarks)`` as :meth:`forward`."""
        t = self.techniques
        feats = self.backbone_attention(feats)
        for layer in self.bifpn:
            feats = layer(feats)
        if t.smart_feature_reuse:
            feats = smart_feature_reuse(feats)
        feats = self.neck_attention(feats)
        if t.multi_scale_intelligence:
            feats = multi_scale_intelligence(feats)
        outs = []
        for i, f in enumerate(feats):
            ctx = self.context[i](f)
            f = self.gate(f, ctx) if self.gate is not None else ctx
            f = channel_shuffle(f, self.shuffle_groups)
            if t.progressive_enhancement:
                f = progressive_enhancement(f)
            outs.append(self.heads[i](f))
        return concat_levels(outs)
