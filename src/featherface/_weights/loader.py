"""The one way from a model name or a weights path to a loaded network: resolve -> build -> load.

:func:`load_network` is used by :func:`featherface.load_model`, the command line (through
``load_model``) and training (the teacher, ``init_weights``); the converter of the authors' V1 weights
builds through the same :func:`featherface._weights.registry.build_model` (the one
architecture table is :data:`featherface._models.NETWORKS`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from featherface._models.config import ModelConfig
from featherface._weights.files import load_weights_into
from featherface._weights.registry import DEFAULT_MODEL, build_model, get_spec
from featherface._weights.resolve import resolve_weights
from featherface.errors import ConfigMismatchError

logger = logging.getLogger(__name__)

__all__ = ["LoadedNetwork", "load_network"]


@dataclass(frozen=True)
class LoadedNetwork:
    """A network with its weights loaded (CPU, eval mode) and where they came from.

    Attributes:
        network: the network (``network.config`` is ``config``).
        config: the model's :class:`~featherface._models.config.ModelConfig`, from the weights' ``config.json``
            or the registry.
        source: ``"explicit"`` (a ``weights=`` path), ``"hub"``, ``"packaged"``, ``"installed"`` or ``"random"``.
        model_file: the ``.safetensors`` file loaded (``None`` for a random network).
    """

    network: nn.Module
    config: ModelConfig
    source: str
    model_file: Path | None


def load_network(
    name: str | None = None,
    *,
    weights: str | os.PathLike | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    sha256: str | None = None,
    pretrained: bool = True,
    expected_config: ModelConfig | None = None,
) -> LoadedNetwork:
    """Resolve weights (:func:`featherface._weights.resolve.resolve_weights`), build the network of their config
    (:func:`featherface._weights.registry.build_model`) and strictly load them (nothing is loaded half-way).

    Args:
        name: a registered model; ``None`` with ``weights`` (a folder with its own ``config.json``)
            or, without ``weights``, the default model.
        weights, revision, cache_dir, local_files_only, sha256: as for :func:`featherface.load_model`.
        pretrained: ``False`` builds a randomly initialised network of ``name`` (no ``weights``).
        expected_config: raise :class:`~featherface.errors.ConfigMismatchError` unless the weights'
            config equals it (training's ``init_weights``).

    Raises:
        UnknownModelError, WeightsError (and subclasses), ValueError (``pretrained=False`` with weights).
    """
    if name is None and weights is None:
        name = DEFAULT_MODEL
    spec = get_spec(name) if name is not None else None
    if not pretrained:
        if weights is not None:
            raise ValueError("pretrained=False builds a random network; do not pass weights= with it")
        assert spec is not None
        return LoadedNetwork(build_model(spec.config).eval(), spec.config, "random", None)
    resolved = resolve_weights(spec, weights=weights, revision=revision, cache_dir=cache_dir, sha256=sha256,
                               local_files_only=local_files_only)
    if expected_config is not None and resolved.config != expected_config:
        raise ConfigMismatchError(
            f"{weights if weights is not None else resolved.model_file}: weights are for {resolved.config.name} "
            f"with another config than the expected {expected_config.name}"
        )
    network = build_model(resolved.config)
    load_weights_into(network, resolved.model_file)
    logger.info("featherface: loaded %s weights from %s (%s)", resolved.config.name, resolved.model_file,
                resolved.source)
    return LoadedNetwork(network.eval(), resolved.config, resolved.source, Path(resolved.model_file))
