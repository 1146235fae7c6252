"""Convert the authors' FeatherFace V1 state dict (original key names) to :class:`FeatherFaceV1`.

The mapping is explicit and strict: every source key must match exactly one rule, every target key
must be produced exactly once, and shapes must agree. Anything else raises :class:`ConversionError`
listing every problem at once. ``module.`` prefixes (DataParallel) and the ``total_ops`` /
``total_params`` buffers that ``thop`` injects into checkpoints are removed here, in one place.

:func:`install_reference_v1` converts the authors' file and installs it in featherface's local store
(what ``featherface convert-reference PATH`` does), after which ``load_model("v1")`` works offline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from featherface.errors import ConversionError
from featherface.hub import strip_module_prefix

__all__ = [
    "REFERENCE_V1_LICENSE",
    "ConversionError",
    "convert_reference_v1_state_dict",
    "install_reference_v1",
    "load_reference_v1",
]

REFERENCE_V1_LICENSE = "MIT (FeatherFace authors' release, https://github.com/fokouarnaud/FeatherFace)"
"""Licence of the authors' V1 weights, recorded in the ``SOURCE.json`` of an installed copy."""




_SSH_BRANCHES = {
    "conv3X3": "branch_a",
    "conv5X5_1": "branch_b1",
    "conv5X5_2": "branch_b2",
    "conv7X7_2": "branch_c1",
    "conv7x7_3": "branch_c2",
}
_DCN_PARTS = {"offset_conv": "offset", "modulator_conv": "modulator"}
_BIFPN_PROJ = {
    "p3_down_channel": "proj_p3",
    "p4_down_channel": "proj_p4",
    "p5_down_channel": "proj_p5",
    "p4_down_channel_2": "proj_p4_skip",
    "p5_down_channel_2": "proj_p5_skip",
}
_SHUFFLE = {"1": "reduce.conv", "2": "reduce.bn", "3": "depthwise.conv", "4": "depthwise.bn",
            "5": "expand.conv", "6": "expand.bn"}
_HEADS = {"ClassHead": "cls", "BboxHead": "box", "LandmarkHead": "ldm"}
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"


def _ssh(m: re.Match[str]) -> str:
    level = int(m[1]) - 1
    branch = _SSH_BRANCHES[m[2]]
    if m[3] == "1":
        return f"context.{level}.{branch}.bn.{m[5]}"
    part = m[4]
    if part == "regular_conv.weight":
        return f"context.{level}.{branch}.conv.weight"
    name, leaf = part.split(".")
    return f"context.{level}.{branch}.conv.{_DCN_PARTS[name]}.{leaf}"


_RULES: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"^body\.(stage[123]\..+)$"), r"backbone.\1"),
    (
        re.compile(r"^bacbkbone_([012])_cbam\.ChannelGate\.mlp\.([13])\.(weight|bias)$"),
        lambda m: f"backbone_attention.{m[1]}.channel_gate.fc{1 if m[2] == '1' else 2}.{m[3]}",
    ),
    (
        re.compile(r"^bacbkbone_([012])_cbam\.SpatialGate\.spatial\.(conv|bn)\.(.+)$"),
        r"backbone_attention.\1.spatial_gate.\2.\3",
    ),
    (
        re.compile(r"^bif_cbam_([012])\.ChannelGate\.mlp\.([13])\.(weight|bias)$"),
        lambda m: f"neck_attention.{m[1]}.channel_gate.fc{1 if m[2] == '1' else 2}.{m[3]}",
    ),
    (
        re.compile(r"^bif_cbam_([012])\.SpatialGate\.spatial\.(conv|bn)\.(.+)$"),
        r"neck_attention.\1.spatial_gate.\2.\3",
    ),
    (
        re.compile(r"^bifpn\.(\d+)\.(conv[345]_(?:up|down))\.(depthwise|pointwise)_conv\.conv\.(weight|bias)$"),
        r"bifpn.layers.\1.\2.\3.\4",
    ),
    (re.compile(r"^bifpn\.(\d+)\.(conv[345]_(?:up|down))\.bn\." + _BN + "$"), r"bifpn.layers.\1.\2.bn.\3"),
    (re.compile(r"^bifpn\.(\d+)\.(p[345]_w[12])$"), r"bifpn.layers.\1.\2"),
    (
        re.compile(r"^bifpn\.(\d+)\.(p[345]_down_channel(?:_2)?)\.([01])\.(?:conv\.)?(.+)$"),
        lambda m: f"bifpn.layers.{m[1]}.{_BIFPN_PROJ[m[2]]}.{'conv' if m[3] == '0' else 'bn'}.{m[4]}",
    ),
    (
        re.compile(
            r"^ssh([123])\.(conv3X3|conv5X5_1|conv5X5_2|conv7X7_2|conv7x7_3)\.([01])\."
            r"(?:((?:offset_conv|modulator_conv)\.(?:weight|bias)|regular_conv\.weight)|" + _BN + ")$"
        ),
        _ssh,
    ),
    (
        re.compile(r"^ssh([123])_cs\.([1-6])\.(.+)$"),
        lambda m: f"shuffle.{int(m[1]) - 1}.{_SHUFFLE[m[2]]}.{m[3]}",
    ),
    (
        re.compile(r"^(ClassHead|BboxHead|LandmarkHead)\.([012])\.conv1x1\.(weight|bias)$"),
        lambda m: f"heads.{m[2]}.{_HEADS[m[1]]}.{m[3]}",
    ),
]


def _map_key(key: str) -> str | None:
    for pattern, target in _RULES:
        m = pattern.match(key)
        if m:
            return target(m) if callable(target) else m.expand(target)  # type: ignore[arg-type]
    return None


def clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip one leading ``module.`` (:func:`featherface.hub.strip_module_prefix`) and drop ``thop``
    bookkeeping buffers."""
    kept = {k: v for k, v in state.items() if not (k.endswith("total_ops") or k.endswith("total_params"))}
    return strip_module_prefix(kept)


def convert_reference_v1_state_dict(
    state: Mapping[str, torch.Tensor], model: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Map the authors' V1 keys onto :class:`featherface.models.FeatherFaceV1` keys.

    Args:
        state: source state dict (authors' names, e.g. ``bacbkbone_0_cbam...``, ``ssh1.conv3X3...``).
        model: target network used for the completeness and shape checks (a fresh ``v1`` if None).

    Returns:
        A state dict that ``model.load_state_dict(..., strict=True)`` accepts.
    """
    if model is None:
        from featherface.registry import build_model

        model = build_model("v1")
    target = model.state_dict()
    problems: list[str] = []
    out: dict[str, torch.Tensor] = {}
    for key, value in clean_state_dict(state).items():
        new = _map_key(key)
        if new is None:
            problems.append(f"unmapped source key {key!r}")
            continue
        if new not in target:
            problems.append(f"source key {key!r} maps to {new!r}, which the model does not have")
            continue
        if new in out:
            problems.append(f"two source keys map to {new!r}")
            continue
        if tuple(value.shape) != tuple(target[new].shape):
            problems.append(
                f"shape mismatch for {key!r} -> {new!r}: {tuple(value.shape)} vs {tuple(target[new].shape)}"
            )
            continue
        out[new] = value
    missing = sorted(set(target) - set(out))
    if missing:
        problems.append(f"{len(missing)} model keys not provided, e.g. {missing[:5]}")
    if problems:
        raise ConversionError("cannot convert reference V1 weights:\n  " + "\n  ".join(problems))
    return out


def load_reference_v1(path: str | Path) -> nn.Module:
    """Build ``v1`` and strictly load the authors' weights from a ``.safetensors`` file (eval mode)."""
    from safetensors.torch import load_file

    from featherface.registry import build_model

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConversionError(
            f"{path}: only .safetensors files are loaded (pickled checkpoints are not); convert a .pth "
            "to safetensors first (see 'featherface convert-reference --help')"
        )
    model = build_model("v1")
    model.load_state_dict(convert_reference_v1_state_dict(load_file(str(path)), model), strict=True)
    return model.eval()


def install_reference_v1(path: str | Path, model: nn.Module | None = None) -> Path:
    """Convert the authors' V1 ``.safetensors`` file and install it in the local weights store.

    Args:
        path: the authors' weights (e.g. ``featherface_v1_reference.safetensors``).
        model: the network already converted from ``path`` by :func:`load_reference_v1` (skips
            converting again).

    Returns:
        The installed folder (:func:`featherface.hub.installed_weights_dir`), from which
        ``featherface.load_model("v1")`` then loads, offline.
    """
    from featherface.hub import install_weights

    if model is None:
        model = load_reference_v1(path)
    return install_weights(model, model.config, path, license=REFERENCE_V1_LICENSE)  # type: ignore[arg-type]
