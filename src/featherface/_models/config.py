"""Frozen architecture configuration dataclasses: priors, techniques and the model architecture.

Architecture (:class:`ModelConfig`) is kept apart from weights metadata
(:class:`featherface._weights.registry.WeightsSpec`); a ``ModelSpec`` in the registry pairs them. Every config round-trips through ``to_dict`` /
``from_dict`` (the ``config.json`` stored next to published weights) and ``from_dict`` rejects unknown
or missing keys instead of guessing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = ["ModelConfig", "PriorConfig", "V2UltraTechniques", "Arch", "ARCHS"]

Arch = Literal["featherface_v1", "featherface_v2_ultra"]
"""Architecture names; each has one network class in :data:`featherface._models.NETWORKS`."""
ARCHS: tuple[str, ...] = get_args(Arch)


def _check_keys(cls: type, data: Mapping[str, Any]) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    unknown = sorted(set(data) - names)
    missing = sorted(required - set(data))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}; known keys: {sorted(names)}")
    if missing:
        raise ValueError(f"{cls.__name__}: missing config keys {missing}")


@dataclass(frozen=True)
class PriorConfig:
    """Anchor (prior) layout.

    ``min_sizes[k]`` are the square anchor sizes in input pixels at pyramid level ``k`` (stride
    ``steps[k]``); ``variances`` are the box-coding variances (centre, size).
    """

    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    steps: tuple[int, ...] = (8, 16, 32)
    variances: tuple[float, float] = (0.1, 0.2)
    clip: bool = False

    def __post_init__(self) -> None:
        if len(self.min_sizes) != len(self.steps):
            raise ValueError(
                f"PriorConfig: {len(self.min_sizes)} min_sizes levels but {len(self.steps)} steps"
            )
        if any(len(m) == 0 for m in self.min_sizes):
            raise ValueError("PriorConfig: every level needs at least one anchor size")
        if any(s <= 0 for s in self.steps) or any(v <= 0 for v in self.variances):
            raise ValueError("PriorConfig: steps and variances must be positive")

    @property
    def anchors_per_level(self) -> tuple[int, ...]:
        """Number of anchors at each location, per level (what the heads must predict)."""
        return tuple(len(m) for m in self.min_sizes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_sizes": [list(m) for m in self.min_sizes],
            "steps": list(self.steps),
            "variances": list(self.variances),
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriorConfig:
        _check_keys(cls, data)
        return cls(
            min_sizes=tuple(tuple(int(s) for s in m) for m in data.get("min_sizes", cls.min_sizes)),
            steps=tuple(int(s) for s in data.get("steps", cls.steps)),
            variances=tuple(float(v) for v in data.get("variances", cls.variances)),  # type: ignore[arg-type]
            clip=bool(data.get("clip", False)),
        )


@dataclass(frozen=True)
class V2UltraTechniques:
    """Switches for the five "zero-parameter" techniques of V2 Ultra.

    The techniques and their names come from the V2 Ultra code of github fokouarnaud/FeatherFace
    (``models/modules_v2_ultra.py``), not from the FeatherFace paper; all are fixed operations with no
    trainable parameters except the sharing gate (``2C``). Implemented in
    :mod:`featherface._models.featherface_v2_ultra`:

    * ``smart_feature_reuse``: after the BiFPN, each level adds fixed multiples of the other two,
      resampled bilinearly (``P3 + 0.3 P4 + 0.2 P5``, ``P4 + 0.2 P3 + 0.2 P5``, ``P5 + 0.3 P4 + 0.2 P3``).
    * ``attention_multiplication``: the backbone attention (CBAM) runs three more times per level with
      the same weights, each time on the sum of the residual attention output and the extra outputs so
      far; only the last output is kept (then ReLU).
    * ``progressive_enhancement``: before each head, three rounds of ``x + 0.1 tanh(x)``, a channel
      shuffle and a gain ``1 + 0.1 i``.
    * ``multi_scale_intelligence``: after the second CBAM, another fixed blend
      (``P3 + 0.4 P4``, ``P4 + 0.3 P3 + 0.3 P5``, ``P5 + 0.4 P4``).
    * ``dynamic_weight_sharing``: a per-image gate ``s = sigmoid(w . avgpool(x))`` blends each level's
      SSH output with its input, ``gamma * (x + s * (SSH(x) - x))``; off, the SSH output is used as is.

    Each can be turned off to measure its effect. The defaults turn all five on; the shipped ``v2_ultra``
    turns attention multiplication off (:func:`featherface._weights.registry.get_config`; measurements in
    docs/models.md).
    """

    smart_feature_reuse: bool = True
    attention_multiplication: bool = True
    progressive_enhancement: bool = True
    multi_scale_intelligence: bool = True
    dynamic_weight_sharing: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> V2UltraTechniques:
        _check_keys(cls, data)
        return cls(**{k: bool(v) for k, v in data.items()})


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and preprocessing of one detector variant.

    Attributes:
        name: registry name (``"v1"``, ``"v2_ultra"``).
        arch: network family.
        width: neck width (BiFPN / SSH / head channels).
        cbam_reduction: CBAM channel-MLP reduction ratio.
        bifpn_layers: number of stacked BiFPN layers.
        ssh_groups: conv groups in the V2 Ultra SSH (V1 uses deformable convs, always 1 group).
        techniques: V2 Ultra technique switches (``None`` for V1).
        priors: anchor layout; heads read their anchor count from it.
        mean_bgr: per-channel mean subtracted from the **BGR** 0..255 input; no std scaling.
    """

    name: str
    arch: Arch
    width: int
    cbam_reduction: int
    bifpn_layers: int
    ssh_groups: int = 1
    techniques: V2UltraTechniques | None = None
    priors: PriorConfig = field(default_factory=PriorConfig)
    mean_bgr: tuple[float, float, float] = (104.0, 117.0, 123.0)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"ModelConfig: unknown arch {self.arch!r}; known: {list(ARCHS)}")
        if self.width <= 0 or self.width % 4:
            raise ValueError(f"ModelConfig: width must be a positive multiple of 4, got {self.width}")
        if self.cbam_reduction <= 0 or self.bifpn_layers <= 0 or self.ssh_groups <= 0:
            raise ValueError("ModelConfig: cbam_reduction, bifpn_layers and ssh_groups must be positive")
        if self.arch == "featherface_v2_ultra" and self.techniques is None:
            object.__setattr__(self, "techniques", V2UltraTechniques())
        if self.arch == "featherface_v1" and self.techniques is not None:
            raise ValueError("ModelConfig: techniques only apply to featherface_v2_ultra")
        if len(self.priors.steps) != 3:
            raise ValueError("ModelConfig: FeatherFace networks have exactly 3 pyramid levels")
        if len(self.mean_bgr) != 3:
            raise ValueError("ModelConfig: mean_bgr needs 3 values (B, G, R)")

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "width": self.width,
            "cbam_reduction": self.cbam_reduction,
            "bifpn_layers": self.bifpn_layers,
            "ssh_groups": self.ssh_groups,
            "techniques": None if self.techniques is None else self.techniques.to_dict(),
            "priors": self.priors.to_dict(),
            "mean_bgr": list(self.mean_bgr),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        _check_keys(cls, data)
        tech = data.get("techniques")
        return cls(
            name=str(data["name"]),
            arch=data["arch"],
            width=int(data["width"]),
            cbam_reduction=int(data["cbam_reduction"]),
            bifpn_layers=int(data["bifpn_layers"]),
            ssh_groups=int(data.get("ssh_groups", 1)),
            techniques=None if tech is None else V2UltraTechniques.from_dict(tech),
            priors=PriorConfig.from_dict(data.get("priors", {})),
            mean_bgr=tuple(float(v) for v in data.get("mean_bgr", (104.0, 117.0, 123.0))),  # type: ignore[arg-type]
        )
