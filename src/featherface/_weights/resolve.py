"""Weights resolution: explicit path -> Hugging Face Hub (pinned, cached, offline-aware) -> packaged copy,
or the local store for models whose weights are not published (``v1``).

Published weights are a folder with ``config.json`` (a :class:`featherface._models.config.ModelConfig`) and
``model.safetensors``. For a registered model:

1. ``weights=`` given: a ``.safetensors`` file (the registered config is used) or a folder holding
   ``config.json`` + ``model.safetensors``. These are the caller's own files; their hash is checked
   only against an explicit ``sha256=``.
2. Otherwise the Hub repo and **commit** pinned in the registry are fetched through
   ``huggingface_hub`` (its cache, ``HF_HOME``/``cache_dir``, ``HF_HUB_OFFLINE`` and
   ``local_files_only`` are honoured).
3. If the Hub cannot be reached (no network, offline mode without a cached copy), the copy packaged
   inside the wheel (``featherface/weights/<name>/``) is used and a warning is logged.
4. A registered model without published weights (``v1``: the authors' release, which featherface may
   not ship) is loaded from the **local store**, ``<featherface cache>/installed/<name>/``
   (:func:`installed_weights_dir`), where ``featherface convert-reference PATH`` installs it
   (:func:`install_weights`). No network is involved. Its ``SOURCE.json`` records the source file, its
   sha256, the licence and the sha256 of ``model.safetensors``, which is verified on every load. Not
   installed: :class:`WeightsNotInstalledError`, whose message says where to get the weights.

The sha256 of ``model.safetensors`` is verified on the Hub and packaged paths; a mismatch raises
:class:`WeightsIntegrityError` and never falls back. ``config.json`` must equal the registered config.
Only safetensors files are ever deserialised, and loading is strict.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from featherface._models.config import ModelConfig
from featherface._weights.files import (
    CONFIG_FILENAME,
    MODEL_FILENAME,
    ResolvedWeights,
    check_config,
    read_config,
    verify_sha256,
)
from featherface._weights.hub import hub_errors, resolve_hub
from featherface._weights.registry import ModelSpec, install_hint
from featherface._weights.store import SOURCE_FILENAME, installed_weights_dir, read_install_record
from featherface.errors import (
    ConfigMismatchError,
    WeightsError,
    WeightsIntegrityError,
    WeightsNotInstalledError,
)

__all__ = ["packaged_weights_dir", "resolve_weights"]

logger = logging.getLogger(__name__)


def packaged_weights_dir() -> Path:
    """Folder inside the installed package that holds the packaged weights."""
    return Path(__file__).resolve().parent.parent / "weights"


def _resolve_explicit(weights: str | os.PathLike, expected: ModelConfig | None, sha256: str | None) -> ResolvedWeights:
    p = Path(weights).expanduser()
    if not p.exists():
        raise WeightsError(f"weights not found: {p}")
    if p.is_dir():
        model_file, cfg_file = p / MODEL_FILENAME, p / CONFIG_FILENAME
        if not model_file.is_file():
            raise WeightsError(f"{p}: folder has no {MODEL_FILENAME}")
        if cfg_file.is_file():
            config = check_config(read_config(cfg_file), expected, cfg_file)
        elif expected is not None:
            config = expected
        else:
            raise WeightsError(f"{p}: folder has no {CONFIG_FILENAME} and no model name was given")
    else:
        model_file = p
        if expected is None:
            raise WeightsError(f"{p}: a bare weights file needs a model name (the model's name, "
                              "--model NAME on the command line), or pass a folder with config.json")
        config = expected
    if model_file.suffix != ".safetensors":
        raise WeightsError(
            f"{model_file}: only .safetensors weights are loaded (pickled checkpoints are not); for the "
            f"FeatherFace authors' .pth, run 'featherface convert-reference {model_file}' once"
        )
    return ResolvedWeights(model_file, config, "explicit", verify_sha256(model_file, sha256))


def _resolve_packaged(spec: ModelSpec) -> ResolvedWeights:
    w = spec.weights
    assert w is not None
    if not w.packaged:
        raise WeightsError(f"model {spec.name!r} has no packaged weights")
    folder = packaged_weights_dir() / w.packaged  # an absolute ``packaged`` path is used as is
    model_file, cfg_file = folder / MODEL_FILENAME, folder / CONFIG_FILENAME
    if not model_file.is_file() or not cfg_file.is_file():
        raise WeightsError(f"packaged weights for {spec.name!r} are missing from {folder}")
    config = check_config(read_config(cfg_file), spec.config, cfg_file)
    return ResolvedWeights(model_file, config, "packaged", verify_sha256(model_file, w.sha256))


def _resolve_installed(spec: ModelSpec) -> ResolvedWeights | None:
    """The weights of ``spec`` in the local store, verified; None if they are not installed."""
    folder = installed_weights_dir(spec.name)
    if not folder.exists():
        return None
    reinstall = f"run 'featherface convert-reference PATH' again to reinstall {spec.name!r}"
    model_file, cfg_file, src_file = folder / MODEL_FILENAME, folder / CONFIG_FILENAME, folder / SOURCE_FILENAME
    missing = [f.name for f in (model_file, cfg_file, src_file) if not f.is_file()]
    if missing:
        raise WeightsError(f"{folder}: installed weights are incomplete (missing {', '.join(missing)}); {reinstall}")
    try:
        expected = read_install_record(spec.name)["model_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{src_file}: unreadable installation record ({exc!r}); {reinstall}") from exc
    config = check_config(read_config(cfg_file), spec.config, cfg_file)
    return ResolvedWeights(model_file, config, "installed", verify_sha256(model_file, str(expected), reinstall))


def resolve_weights(
    spec: ModelSpec | None,
    *,
    weights: str | os.PathLike | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    sha256: str | None = None,
) -> ResolvedWeights:
    """Find the weights file for ``spec`` following the order in the module docstring."""
    if weights is not None:
        return _resolve_explicit(weights, None if spec is None else spec.config, sha256)
    if spec is None:
        raise WeightsError("no model name and no weights path given")
    if spec.weights is None:
        installed = _resolve_installed(spec)
        if installed is not None:
            return installed
        hint = install_hint(spec.name)
        if hint is not None:
            raise WeightsNotInstalledError(
                f"model {spec.name!r} has no published weights: {hint} (installed into "
                f"{installed_weights_dir(spec.name)}); or pass weights=PATH to load your own"
            )
        raise WeightsError(
            f"model {spec.name!r} has no published weights yet; pass weights=PATH to load your own "
            "or pretrained=False for a randomly initialised network"
        )
    if spec.weights.revision is None and revision is None:
        logger.info("featherface: %s is not published on the Hub yet; using the packaged copy", spec.name)
        return _resolve_packaged(spec)
    try:
        return resolve_hub(spec, revision, cache_dir, local_files_only)
    except WeightsError:
        raise
    except hub_errors() as exc:
        if revision not in (None, spec.weights.revision):
            raise WeightsError(f"cannot fetch revision {revision!r} of {spec.weights.repo_id}: {exc}") from exc
        logger.warning(
            "featherface: could not get %s from the Hugging Face Hub (%s: %s); using the packaged copy",
            spec.name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
        )
        try:
            return _resolve_packaged(spec)
        except (WeightsIntegrityError, ConfigMismatchError):
            raise  # a packaged copy that is there but wrong is reported as such, not as "missing"
        except WeightsError as packaged_exc:
            raise WeightsError(f"{packaged_exc}; and the Hub was unreachable: {exc}") from exc
