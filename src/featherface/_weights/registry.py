"""The table of model facts: every registered variant's config, description, published or installable
weights and install hint. ``list_models()``, ``get_spec(name)``, ``build_model(name)``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

from featherface._models import create_network
from featherface._models.config import ModelConfig, PriorConfig, V2UltraTechniques
from featherface.errors import UnknownModelError

__all__ = ["ModelSpec", "WeightsSpec", "ReferenceWeights", "DEFAULT_MODEL", "list_models", "get_spec", "get_config",
           "build_model", "register_model", "unregister_model", "install_hint"]


@dataclass(frozen=True)
class WeightsSpec:
    """Where a model's published weights live and what they must hash to.

    ``revision`` is a Hub commit hash, never a branch name; ``None`` means the weights are not on the
    Hub yet (``repo_id`` is where they will be published) and only the packaged copy is used.
    ``packaged`` names the folder inside the wheel (``featherface/weights/<packaged>/``) that is used
    when the Hub cannot be reached. ``metrics`` holds measured numbers only; ``metrics_protocol``
    says how they were measured.
    """

    repo_id: str
    revision: str | None
    filename: str
    sha256: str
    num_params: int
    license: str
    config_filename: str = "config.json"
    packaged: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_protocol: str = ""


@dataclass(frozen=True)
class ReferenceWeights:
    """Weights that featherface may not ship but that users install themselves (``v1``: the authors'
    release, installed by ``featherface convert-reference FILE``): where the exact file is and what it
    hashes to, its licence, and the metrics measured on it (with ``metrics_protocol``).
    """

    repository: str
    commit: str
    path: str
    url: str
    sha256: str
    license: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_protocol: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: architecture config, a one-line description, optional published weights, and
    optionally the third-party weights that users install themselves (``reference``)."""

    name: str
    config: ModelConfig
    description: str
    weights: WeightsSpec | None = None
    reference: ReferenceWeights | None = None
    install_hint: str | None = None
    """For weights that are not published but can be installed locally: how to get and install them."""


_V1 = ModelConfig(
    name="v1",
    arch="featherface_v1",
    width=64,
    cbam_reduction=16,
    bifpn_layers=3,
    priors=PriorConfig(),
)

_V2_ULTRA = ModelConfig(
    name="v2_ultra",
    arch="featherface_v2_ultra",
    width=20,
    cbam_reduction=128,
    bifpn_layers=2,
    ssh_groups=1,
    # "attention multiplication" (3 extra tied-weight CBAM rounds per backbone level, no parameters)
    # is off: in the dev-split ablation (3 seeds, docs/data/technique_ablation_dev.json) it gained
    # nothing and was the slowest graph. All five techniques off was ahead of this config on every
    # seed, but the shipped weights were trained with the other four on and this config must match
    # them; it changes with weights trained without them (docs/training.md).
    techniques=V2UltraTechniques(attention_multiplication=False),
    priors=PriorConfig(),
)

_REGISTRY: dict[str, ModelSpec] = {
    "v1": ModelSpec(
        name="v1",
        config=_V1,
        description="FeatherFace V1 (authors' network): MobileNetV1-0.25, CBAM, BiFPN x3, DCN SSH; 592,371 params",
        # The authors' weights (MIT), not shipped: installed by `featherface convert-reference FILE`. The
        # file at the head of their repository is another network; this commit's is V1 (featherface._weights.convert).
        reference=ReferenceWeights(
            repository="https://github.com/fokouarnaud/FeatherFace",
            commit="17aa64df020d74294ded842aa67dbfbf51d7e521",
            path="weights/mobilenet0.25_Final.pth",
            url="https://raw.githubusercontent.com/fokouarnaud/FeatherFace/17aa64df020d74294ded842aa67dbfbf51d7e521/"
                "weights/mobilenet0.25_Final.pth",
            sha256="78cee1c6b825d155d2778e39c27b39b2edb4c45249bed34ffe8a5a80f65f6a00",
            license="MIT (FeatherFace authors' release, https://github.com/fokouarnaud/FeatherFace)",
            # docs/evaluation.md: featherface evaluate --weights reference_v1 (the authors' file converted)
            metrics={"easy": 0.9147290290562381, "medium": 0.9005667009559524, "hard": 0.7590194899871442},
            metrics_protocol="AP on the full WIDER FACE val set (3,226 images), original size, official protocol; "
                             "the authors' weights converted by convert-reference",
        ),
        install_hint=(
            "the v1 weights are the FeatherFace authors' release (MIT licence) and are not shipped with "
            "featherface; get weights/mobilenet0.25_Final.pth of https://github.com/fokouarnaud/FeatherFace at commit "
            "17aa64d (https://raw.githubusercontent.com/fokouarnaud/FeatherFace/17aa64df020d74294ded842aa67dbfbf51d7e521/"
            "weights/mobilenet0.25_Final.pth, sha256 78cee1c6b825d155d2778e39c27b39b2edb4c45249bed34ffe8a5a80f65f6a00; "
            "the file at the repository's head is another network), then run 'featherface convert-reference PATH' "
            "once to install them, after which load_model(\"v1\") works offline"
        ),
    ),
    "v2_ultra": ModelSpec(
        name="v2_ultra",
        config=_V2_ULTRA,
        description="FeatherFace V2 Ultra: width-20 neck, shared attention, distilled from v1; ~244.5 K params",
        weights=WeightsSpec(
            # Trained by this project on 2-core CPUs from the reference V1's backbone: frozen, fine-tuned,
            # then frozen again while the neck and heads trained on WIDER FACE train plus teacher-labelled
            # photographs (configs/cpu/v2_ultra_s1_frozen.yaml, v2_ultra_s2_unfrozen.yaml,
            # v2_ultra_abl_h_no_mask_sets_600.yaml, v2_ultra_s8_more_photos.yaml; chosen on the dev split;
            # provenance of every part in the model card and docs/models.md). Not uploaded to the Hub yet (revision None): the packaged copy is used.
            # repo_id is where the Hub-ready folder (src/featherface/weights/v2_ultra) is to be published.
            repo_id="featherface/featherface-v2-ultra",
            revision=None,
            filename="model.safetensors",
            sha256="ff5a4c6a394ac7ce2a51169f077e45a4d1891d2f2f95541ae41a53268510f6be",
            num_params=244_523,
            license="MIT (weights trained on WIDER FACE: non-commercial research data; backbone from the MIT-licensed FeatherFace V1 release)",
            packaged="v2_ultra",
            metrics={"easy": 0.7876973629805386, "medium": 0.7141171784632143, "hard": 0.45980775578295174},
            metrics_protocol="AP on the full WIDER FACE val set (3,226 images), original size, official protocol",
        ),
    ),
}

_BUILTIN = frozenset(_REGISTRY)

DEFAULT_MODEL = "v2_ultra"
"""The model ``load_model()`` and the command line use when none is named."""


def list_models() -> list[str]:
    """Names of the registered variants, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """Registry entry for ``name``; ``ValueError`` listing the known names otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name]


def get_config(name: str) -> ModelConfig:
    return get_spec(name).config


def build_model(name_or_config: str | ModelConfig) -> nn.Module:
    """Randomly initialised network for a registered name or an explicit :class:`ModelConfig`.

    The network's ``forward`` maps ``x[B, 3, H, W]`` (BGR minus ``config.mean_bgr``) to raw
    ``(loc[B, N, 4], logits[B, N, 2], landmarks[B, N, 10])``.
    """
    config = name_or_config if isinstance(name_or_config, ModelConfig) else get_config(name_or_config)
    return create_network(config)


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> None:
    """Add a variant (e.g. your own trained weights published on the Hub) to the registry."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register_model expects a ModelSpec, got {type(spec).__name__}")
    if spec.name != spec.config.name:
        raise ValueError(f"spec name {spec.name!r} differs from its config name {spec.config.name!r}")
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"model {spec.name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[spec.name] = spec


def unregister_model(name: str) -> None:
    """Remove a variant added with :func:`register_model`."""
    if name in _BUILTIN:
        raise ValueError(f"cannot unregister the built-in model {name!r}")
    _REGISTRY.pop(name, None)


def install_hint(name: str) -> str | None:
    """How to get and install the weights of ``name`` when they are not published, else None
    (:attr:`ModelSpec.install_hint`; None for an unknown name too)."""
    spec = _REGISTRY.get(name)
    return None if spec is None else spec.install_hint
