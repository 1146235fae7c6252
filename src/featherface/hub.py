"""Weights resolution: explicit path -> Hugging Face Hub (pinned, cached, offline-aware) -> packaged copy,
or the local store for models whose weights are not published (``v1``).

Published weights are a folder with ``config.json`` (a :class:`featherface.config.ModelConfig`) and
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

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from featherface.config import ModelConfig, ModelSpec
from featherface.errors import (
    ConfigMismatchError,
    WeightsError,
    WeightsIntegrityError,
    WeightsNotInstalledError,
)

__all__ = [
    "MODEL_FILENAME",
    "CONFIG_FILENAME",
    "SOURCE_FILENAME",
    "INSTALL_HINTS",
    "ResolvedWeights",
    "sha256_file",
    "packaged_weights_dir",
    "featherface_cache_dir",
    "installed_weights_dir",
    "is_installed",
    "read_install_record",
    "install_hint",
    "hub_errors",
    "install_weights",
    "resolve_weights",
    "load_state_dict_file",
    "has_authors_key_names",
    "authors_weights_hint",
    "strip_module_prefix",
    "load_weights_into",
    "save_weights_folder",
    "download_weights",
    "WeightsSource",
    "WeightsError",
    "WeightsIntegrityError",
    "ConfigMismatchError",
    "WeightsNotInstalledError",
]

logger = logging.getLogger(__name__)

WeightsSource = Literal["explicit", "hub", "packaged", "installed", "random"]
MODEL_FILENAME = "model.safetensors"
CONFIG_FILENAME = "config.json"
SOURCE_FILENAME = "SOURCE.json"
"""Provenance record of an installed weights folder (source file, sha256s, licence)."""

INSTALL_HINTS: dict[str, str] = {
    "v1": (
        "the v1 weights are the FeatherFace authors' release (MIT licence) and are not shipped with "
        "featherface; get weights/mobilenet0.25_Final.pth of https://github.com/fokouarnaud/FeatherFace at commit "
        "17aa64d (https://raw.githubusercontent.com/fokouarnaud/FeatherFace/17aa64df020d74294ded842aa67dbfbf51d7e521/"
        "weights/mobilenet0.25_Final.pth, sha256 78cee1c6b825d155d2778e39c27b39b2edb4c45249bed34ffe8a5a80f65f6a00; "
        "the file at the repository's head is another network), then run 'featherface convert-reference PATH' "
        "once to install them, after which load_model(\"v1\") works offline"
    ),
}
"""Models whose weights are not published but can be installed locally: name -> how to get them."""




@dataclass(frozen=True)
class ResolvedWeights:
    """Where the weights of one load came from."""

    model_file: Path
    config: ModelConfig
    source: WeightsSource
    sha256: str


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def packaged_weights_dir() -> Path:
    """Folder inside the installed package that holds the packaged weights."""
    return Path(__file__).resolve().parent / "weights"


def featherface_cache_dir() -> Path:
    """featherface's own cache root: ``$FEATHERFACE_CACHE``, else ``$XDG_CACHE_HOME/featherface``, else
    ``~/.cache/featherface`` (the root of the ONNX cache of :mod:`featherface.backends` too).

    Hub downloads do not go here: they stay in the Hugging Face cache (``HF_HOME``/``HF_HUB_CACHE``).
    """
    root = os.environ.get("FEATHERFACE_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "featherface"


def installed_weights_dir(name: str) -> Path:
    """Folder of the locally installed weights of model ``name``: ``<cache>/installed/<name>``."""
    return featherface_cache_dir() / "installed" / name


def is_installed(name: str) -> bool:
    """Whether weights for ``name`` are in the local store (complete folder; not verified here)."""
    folder = installed_weights_dir(name)
    return all((folder / f).is_file() for f in (MODEL_FILENAME, CONFIG_FILENAME, SOURCE_FILENAME))


def read_install_record(name: str) -> dict[str, Any]:
    """The ``SOURCE.json`` of the installed weights of ``name`` (``OSError`` if not installed,
    ``ValueError`` if it is not a JSON object)."""
    record = json.loads((installed_weights_dir(name) / SOURCE_FILENAME).read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"{SOURCE_FILENAME} is not a JSON object")
    return record


def install_hint(name: str) -> str | None:
    """How to get and install the weights of ``name`` when they are not published, else None."""
    return INSTALL_HINTS.get(name)


def _read_config(path: Path) -> ModelConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigMismatchError(f"{path}: unreadable config.json ({exc})") from exc
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigMismatchError(f"{path}: invalid model config ({exc})") from exc


def _check_config(found: ModelConfig, expected: ModelConfig | None, where: Path) -> ModelConfig:
    if expected is not None and found != expected:
        diff = {
            k: (v, expected.to_dict()[k]) for k, v in found.to_dict().items() if expected.to_dict()[k] != v
        }
        raise ConfigMismatchError(
            f"{where}: config does not match the registered model {expected.name!r}; "
            f"differences (found, registered): {diff}"
        )
    return found


def _verify(path: Path, expected_sha256: str | None, remedy: str = "delete it to download it again") -> str:
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise WeightsIntegrityError(
            f"{path}: sha256 {digest} does not match the registered {expected_sha256}; "
            f"the file is corrupt or has been modified ({remedy})"
        )
    return digest


def _resolve_explicit(weights: str | os.PathLike, expected: ModelConfig | None, sha256: str | None) -> ResolvedWeights:
    p = Path(weights).expanduser()
    if not p.exists():
        raise WeightsError(f"weights not found: {p}")
    if p.is_dir():
        model_file, cfg_file = p / MODEL_FILENAME, p / CONFIG_FILENAME
        if not model_file.is_file():
            raise WeightsError(f"{p}: folder has no {MODEL_FILENAME}")
        if cfg_file.is_file():
            config = _check_config(_read_config(cfg_file), expected, cfg_file)
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
    return ResolvedWeights(model_file, config, "explicit", _verify(model_file, sha256))


def hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the Hub is unreachable here", which allow the packaged fallback."""
    from huggingface_hub import errors

    found: list[type[BaseException]] = [OSError]
    try:  # huggingface_hub < 1.0 speaks HTTP through requests, newer releases through httpx
        import requests

        found.append(requests.exceptions.RequestException)
    except ImportError:
        pass
    for name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "HfHubHTTPError"):
        cls = getattr(errors, name, None)
        if cls is not None:
            found.append(cls)
    import importlib

    for mod_name in ("httpx", "httpx2"):  # the HTTP client depends on the huggingface_hub release
        try:
            found.append(importlib.import_module(mod_name).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _resolve_hub(
    spec: ModelSpec, revision: str | None, cache_dir: str | os.PathLike | None, local_files_only: bool
) -> ResolvedWeights:
    from huggingface_hub import hf_hub_download

    w = spec.weights
    assert w is not None
    kw: dict[str, Any] = {
        "repo_id": w.repo_id,
        "revision": revision or w.revision,
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "local_files_only": local_files_only,
    }
    cfg_path = Path(hf_hub_download(filename=w.config_filename, **kw))
    model_path = Path(hf_hub_download(filename=w.filename, **kw))
    config = _check_config(_read_config(cfg_path), spec.config, cfg_path)
    # a revision other than the pinned one is the caller's choice: its hash is not registered
    expected = w.sha256 if revision in (None, w.revision) else None
    return ResolvedWeights(model_path, config, "hub", _verify(model_path, expected))


def _resolve_packaged(spec: ModelSpec) -> ResolvedWeights:
    w = spec.weights
    assert w is not None
    if not w.packaged:
        raise WeightsError(f"model {spec.name!r} has no packaged weights")
    folder = packaged_weights_dir() / w.packaged  # an absolute ``packaged`` path is used as is
    model_file, cfg_file = folder / MODEL_FILENAME, folder / CONFIG_FILENAME
    if not model_file.is_file() or not cfg_file.is_file():
        raise WeightsError(f"packaged weights for {spec.name!r} are missing from {folder}")
    config = _check_config(_read_config(cfg_file), spec.config, cfg_file)
    return ResolvedWeights(model_file, config, "packaged", _verify(model_file, w.sha256))


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
    config = _check_config(_read_config(cfg_file), spec.config, cfg_file)
    return ResolvedWeights(model_file, config, "installed", _verify(model_file, str(expected), reinstall))


def install_weights(
    model: nn.Module, config: ModelConfig, source_file: str | os.PathLike, *, license: str
) -> Path:
    """Install ``model`` as the weights of ``config.name`` in the local store; returns the folder.

    Writes ``config.json``, ``model.safetensors`` and ``SOURCE.json`` (source file name and sha256,
    licence, sha256 of ``model.safetensors``) into a temporary folder next to the store entry, then
    renames it into place, replacing any previous installation: an interrupted install leaves either
    the old installation or the new one, never a partial folder.
    """
    from featherface._version import __version__

    source = Path(source_file)
    target = installed_weights_dir(config.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{config.name}-tmp-", dir=target.parent))
    try:
        model_sha = save_weights_folder(model, config, tmp)
        record = {
            "model": config.name,
            "source_file": source.name,
            "source_sha256": sha256_file(source),
            "license": license,
            "model_sha256": model_sha,
            "converted_by": f"featherface {__version__}",
        }
        (tmp / SOURCE_FILENAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # a directory cannot be renamed over a non-empty one: move the old installation aside first
    old = Path(tempfile.mkdtemp(prefix=f".{config.name}-old-", dir=target.parent))
    if target.exists():
        os.replace(target, old / config.name)
    try:
        os.replace(tmp, target)
    except BaseException:
        if (old / config.name).exists() and not target.exists():
            os.replace(old / config.name, target)  # put the previous installation back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
    return target


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
        return _resolve_hub(spec, revision, cache_dir, local_files_only)
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


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Deserialise a safetensors file (and nothing else) on the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if p.suffix != ".safetensors":
        raise WeightsError(f"{p}: only .safetensors weights are loaded")
    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{p}: not a valid safetensors file ({exc})") from exc


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with one leading ``module.`` removed from every key that has it, other keys unchanged.

    ``module.`` is what ``DataParallel``/``DistributedDataParallel`` and ``AveragedModel`` (EMA) put in
    front of the wrapped network's keys.
    """
    prefix = "module."
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


_AUTHORS_KEY_PREFIXES = ("ClassHead.", "BboxHead.", "LandmarkHead.", "body.stage", "bacbkbone_", "bif_cbam_",
                         "ssh1.", "ssh2.", "ssh3.", "fpn.")
"""Key prefixes of the FeatherFace authors' original state dicts (featherface's own networks use none)."""


def has_authors_key_names(keys: Iterable[str]) -> bool:
    """Whether a state dict uses the FeatherFace authors' original key names (``ClassHead.0...``,
    ``body.stage1...``, ``bacbkbone_0_cbam...``; one leading ``module.`` ignored) rather than featherface's."""
    names = [k[len("module."):] if k.startswith("module.") else k for k in keys]
    return any(k.startswith(_AUTHORS_KEY_PREFIXES) for k in names)


def authors_weights_hint(path: str | os.PathLike) -> str:
    """What to do with a file of the authors' weights: convert it once with ``featherface convert-reference``."""
    return (f"these are the FeatherFace authors' weights with their original key names, which featherface "
            f"loads only once converted: run 'featherface convert-reference {path}' (installs them as v1, "
            f"then load_model(\"v1\") or --model v1 loads them), or 'featherface convert-reference {path} OUT' "
            f"and load the folder OUT")


def load_weights_into(model: nn.Module, path: str | os.PathLike) -> None:
    """Strictly load a safetensors state dict into ``model``; nothing is loaded on any mismatch.

    A file of the FeatherFace authors' weights (their key names) raises a :class:`WeightsError` that
    says to convert it with ``featherface convert-reference FILE``.
    """
    state = load_state_dict_file(path)
    target = model.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    shapes = [k for k in set(state) & set(target) if tuple(state[k].shape) != tuple(target[k].shape)]
    if (missing or unexpected) and has_authors_key_names(unexpected):
        raise WeightsError(f"{path}: {authors_weights_hint(path)}")
    if missing or unexpected or shapes:
        raise WeightsError(
            f"{path}: weights do not fit the network: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(shapes)} with wrong shapes "
            f"(e.g. {sorted(shapes)[:3]})"
        )
    model.load_state_dict(state, strict=True)


def save_weights_folder(model: nn.Module, config: ModelConfig, folder: str | os.PathLike) -> str:
    """Write ``config.json`` + ``model.safetensors`` into ``folder``; returns the weights' sha256.

    The output is byte-reproducible: the same weights always give the same sha256 (the safetensors
    header carries a single metadata entry, because several would be written in an unspecified order).
    """
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILENAME).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / MODEL_FILENAME), metadata={"format": "pt"})
    return sha256_file(out / MODEL_FILENAME)


def download_weights(
    names: list[str], *, cache_dir: str | os.PathLike | None = None
) -> dict[str, ResolvedWeights]:
    """Fetch the pinned weights of ``names`` into the Hub cache (for air-gapped machines)."""
    from featherface.registry import get_spec

    out = {}
    for name in names:
        spec = get_spec(name)
        if spec.weights is None:
            raise WeightsError(f"model {name!r} has no published weights")
        if spec.weights.revision is None:
            raise WeightsError(
                f"model {name!r} is not on the Hugging Face Hub yet; its weights ship inside the package"
            )
        out[name] = _resolve_hub(spec, None, cache_dir, False)
    return out
