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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featherface._weights.files import strip_module_prefix
from featherface._weights.registry import ReferenceWeights
from featherface.errors import ConversionError

__all__ = [
    "REFERENCE_V1_LICENSE",
    "REFERENCE_V1_REPOSITORY",
    "REFERENCE_V1_COMMIT",
    "REFERENCE_V1_PATH",
    "REFERENCE_V1_SHA256",
    "REFERENCE_V1_URL",
    "AUTHORS_FILES",
    "AuthorsFile",
    "convert_reference_v1_state_dict",
    "identify_authors_file",
    "install_reference_v1",
    "load_reference_v1",
    "read_reference_state_dict",
    "reference_v1_source",
    "which_authors_file",
]

REFERENCE_V1_LICENSE = "MIT (FeatherFace authors' release, https://github.com/fokouarnaud/FeatherFace)"
"""Licence of the authors' V1 weights, recorded in the ``SOURCE.json`` of an installed copy."""

def _reference() -> ReferenceWeights:
    from featherface._weights.registry import get_spec

    ref = get_spec("v1").reference
    assert ref is not None
    return ref


REFERENCE_V1_REPOSITORY = _reference().repository
REFERENCE_V1_COMMIT = _reference().commit
"""The commit of the authors' repository whose ``weights/mobilenet0.25_Final.pth`` is FeatherFace V1.
The same file is at d9c57569; the file at the repository's head is another network."""
REFERENCE_V1_PATH = _reference().path
REFERENCE_V1_SHA256 = _reference().sha256
"""sha256 of ``weights/mobilenet0.25_Final.pth`` at :data:`REFERENCE_V1_COMMIT` (2,700,517 bytes)."""
REFERENCE_V1_URL = _reference().url
"""Download address of that exact file (pinned to the commit, not to a branch)."""



def reference_v1_source() -> str:
    """Which file to take, in one line: path, commit, download address and sha256."""
    return f"{REFERENCE_V1_PATH} at commit {REFERENCE_V1_COMMIT[:7]} ({REFERENCE_V1_URL}, sha256 {REFERENCE_V1_SHA256})"


@dataclass(frozen=True)
class AuthorsFile:
    """One known version of the authors' ``weights/mobilenet0.25_Final.pth`` (or a conversion of it)."""

    sha256: str
    commits: tuple[str, ...]
    what: str
    is_v1: bool


AUTHORS_FILES: tuple[AuthorsFile, ...] = (
    AuthorsFile("2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
                ("f3f70863f76569f38badf5749ccad6c2c815eddc",),
                "the earliest mobilenet0.25_Final.pth of the FeatherFace repository (a RetinaFace-MobileNet-0.25 "
                "layout: FPN and plain SSH, 64-channel heads, 300 keys), not FeatherFace V1", False),
    AuthorsFile(REFERENCE_V1_SHA256,
                ("d9c57569bd67c997d815ff2e3edeefbfd45122ff", REFERENCE_V1_COMMIT),
                "FeatherFace V1 (the authors' mobilenet0.25_Final.pth, 587 tensors plus thop buffers)", True),
    AuthorsFile("3114070d6ce27437a6bb29da083f5fd96086a703b9ff627a40591eb245f09373",
                ("7174747ad50195dd89b81e970ba03d98b796b6d5",),
                "the newer FeatherFace variant of the authors' repository (437 keys, 56-channel heads), not V1",
                False),
    AuthorsFile("3271e30763c069c9dcad6368ae048c53b6be2acf60179240e6b147e6359ef80d",
                ("503d2c55321106049a91988261d87feab78542c2",),
                "the newer FeatherFace variant at the head of the authors' repository (437 keys, 56-channel "
                "heads), not V1", False),
    AuthorsFile("466ffb9e76af18f100e8eeb82047c5fb17e1c35e7bc8ee244dab8bd98be7b70d", (),
                "FeatherFace V1 as featherface_v1_reference.safetensors (the V1 .pth saved as safetensors)", True),
)
"""The versions of ``weights/mobilenet0.25_Final.pth`` in the history of the authors' repository (and
the safetensors copy of V1 used by featherface's tests), recognised by sha256."""


def which_authors_file(sha256: str) -> AuthorsFile | None:
    """The known authors' file with this sha256, or None."""
    return next((f for f in AUTHORS_FILES if f.sha256 == sha256.lower()), None)


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


def _ssh(m: re.Match[str]) -> str | None:
    level = int(m[1]) - 1
    branch = _SSH_BRANCHES[m[2]]
    if m[3] == "1":  # the BatchNorm after the deformable conv
        return None if m[5] is None else f"context.{level}.{branch}.bn.{m[5]}"
    part = m[4]
    if part is None:  # e.g. ssh1.conv3X3.0.weight: a plain conv (older authors' files), not a DCN
        return None
    if part == "regular_conv.weight":
        return f"context.{level}.{branch}.conv.weight"
    name, leaf = part.split(".")
    return f"context.{level}.{branch}.conv.{_DCN_PARTS[name]}.{leaf}"


_RULES: list[tuple[re.Pattern[str], Any]] = [
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
            new: str | None = target(m) if callable(target) else m.expand(target)
            return new
    return None


def clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip one leading ``module.`` (:func:`featherface._weights.files.strip_module_prefix`) and drop ``thop``
    bookkeeping buffers."""
    kept = {k: v for k, v in state.items() if not (k.endswith("total_ops") or k.endswith("total_params"))}
    return strip_module_prefix(kept)


def _head_channels(state: Mapping[str, Any]) -> int | None:
    weight = state.get("ClassHead.0.conv1x1.weight")
    shape = getattr(weight, "shape", None)
    return int(shape[1]) if shape is not None and len(shape) == 4 else None


def identify_authors_file(state: Mapping[str, Any]) -> str | None:
    """What a state dict that is *not* FeatherFace V1 is, when its key names say so; else None.

    Recognises the other networks saved as ``mobilenet0.25_Final.pth`` in the authors' repository:
    the RetinaFace-MobileNet-0.25 layout of its earliest version (``fpn.*`` and plain-conv SSH keys
    such as ``ssh1.conv3X3.0.weight``) and the newer FeatherFace variant (BiFPN without the CBAM
    modules, 56-channel heads) of its later versions.
    """
    keys = set(state)
    if not keys:
        return "an empty state dict"
    heads = _head_channels(state)
    has_cbam = any(k.startswith(("bacbkbone_", "bif_cbam_")) for k in keys)
    if any(k.startswith("fpn.") for k in keys) and not any(k.startswith("bifpn.") for k in keys):
        return (f"an older network from the authors' repository (RetinaFace-MobileNet-0.25 layout: FPN and "
                f"plain SSH convs, {heads or '?'}-channel heads, {len(keys)} keys), not FeatherFace V1")
    if any(k.startswith("bifpn.") for k in keys) and not has_cbam and heads is not None and heads != 64:
        return (f"the newer FeatherFace variant of the authors' repository ({len(keys)} keys, "
                f"{heads}-channel heads), not the V1 network")
    if heads is not None and heads != 64 and any(k.startswith(("ClassHead.", "BboxHead.")) for k in keys):
        return f"a network with {heads}-channel heads ({len(keys)} keys), not FeatherFace V1 (64-channel heads)"
    return None


def read_reference_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the authors' state dict from a ``.safetensors`` file or a PyTorch ``.pth`` checkpoint.

    A ``.pth`` is read with ``torch.load(weights_only=True)`` (tensors and plain containers only: no
    code from the file runs); a checkpoint dict that wraps the weights under ``state_dict``, ``model``
    or ``net`` is unwrapped. The format is recognised from the content, not the suffix. Every
    failure (missing, empty or unreadable file, not a state dict) raises :class:`ConversionError`
    with a one-line message.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise ConversionError(f"{path}: empty file, not a weights file")
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    obj: Any
    try:
        if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch zip archive / legacy pickle
            obj = torch.load(path, map_location="cpu", weights_only=True)
        elif head[8:9] == b"{" and 0 < header_len < 100_000_000:  # safetensors: u64 header length, JSON
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            raise ConversionError(f"{path}: neither a safetensors file nor a PyTorch checkpoint")
    except ConversionError:
        raise
    except Exception as exc:  # unpickling, zip, safetensors, out-of-range header...: one line, no traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConversionError(
            f"{path}: unreadable weights file ({type(exc).__name__}{': ' + first[:200] if first else ''})"
        ) from None
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model", "net"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping) and inner:
                obj = inner
                break
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path}: the file holds a {type(obj).__name__}, not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(
            f"{path}: not a state dict ({len(bad)} entries are not name -> tensor, e.g. {str(bad[0])[:60]!r})"
        )
    if not obj:
        raise ConversionError(f"{path}: the state dict is empty")
    return dict(obj)


def convert_reference_v1_state_dict(
    state: Mapping[str, torch.Tensor], model: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Map the authors' V1 keys onto :class:`featherface._models.FeatherFaceV1` keys.

    Args:
        state: source state dict (authors' names, e.g. ``bacbkbone_0_cbam...``, ``ssh1.conv3X3...``).
        model: target network used for the completeness and shape checks (a fresh ``v1`` if None).

    Returns:
        A state dict that ``model.load_state_dict(..., strict=True)`` accepts.
    """
    if model is None:
        from featherface._weights.registry import build_model

        model = build_model("v1")
    target = model.state_dict()
    cleaned = clean_state_dict(state)
    other = identify_authors_file(cleaned)
    if other is not None:
        raise ConversionError(f"this is {other}; convert-reference takes FeatherFace V1: {reference_v1_source()}")
    problems: list[str] = []
    out: dict[str, torch.Tensor] = {}
    for key, value in cleaned.items():
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
    """Build ``v1`` and strictly load the authors' weights (eval mode).

    ``path`` is the authors' ``mobilenet0.25_Final.pth`` (:data:`REFERENCE_V1_URL`) or the same
    state dict as ``.safetensors`` (:func:`read_reference_state_dict`). Any other file raises
    :class:`ConversionError` with a one-line message; the authors' other networks are named.
    """
    from featherface._weights.registry import build_model

    path = Path(path)
    state = read_reference_state_dict(path)
    model = build_model("v1")
    try:
        converted = convert_reference_v1_state_dict(state, model)
    except ConversionError as exc:
        raise ConversionError(f"{path}: {exc}") from None
    model.load_state_dict(converted, strict=True)
    return model.eval()


def install_reference_v1(path: str | Path, model: nn.Module | None = None) -> Path:
    """Convert the authors' V1 file (``.pth`` or ``.safetensors``) and install it in the local weights store.

    Args:
        path: the authors' weights (``mobilenet0.25_Final.pth`` at :data:`REFERENCE_V1_COMMIT`, or
            the same state dict as ``featherface_v1_reference.safetensors``).
        model: the network already converted from ``path`` by :func:`load_reference_v1` (skips
            converting again).

    Returns:
        The installed folder (:func:`featherface._weights.store.installed_weights_dir`), from which
        ``featherface.load_model("v1")`` then loads, offline.
    """
    from featherface._weights.store import install_weights

    if model is None:
        model = load_reference_v1(path)
    return install_weights(model, model.config, path, license=REFERENCE_V1_LICENSE)  # type: ignore[arg-type]
