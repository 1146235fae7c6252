"""The weights folder format and state-dict I/O: ``config.json`` + ``model.safetensors``, their sha256,
strict loading into a network and byte-reproducible saving.

Only safetensors files are ever deserialised, and loading is strict: nothing is loaded on any mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from featherface._models.config import ModelConfig
from featherface.errors import ConfigMismatchError, WeightsError, WeightsIntegrityError

__all__ = [
    "MODEL_FILENAME",
    "CONFIG_FILENAME",
    "WeightsSource",
    "ResolvedWeights",
    "sha256_file",
    "read_config",
    "check_config",
    "verify_sha256",
    "load_state_dict_file",
    "has_authors_key_names",
    "authors_weights_hint",
    "strip_module_prefix",
    "load_weights_into",
    "save_weights_folder",
]

MODEL_FILENAME = "model.safetensors"
CONFIG_FILENAME = "config.json"
WeightsSource = Literal["explicit", "hub", "packaged", "installed", "random"]


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


def read_config(path: Path) -> ModelConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigMismatchError(f"{path}: unreadable config.json ({exc})") from exc
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigMismatchError(f"{path}: invalid model config ({exc})") from exc


def check_config(found: ModelConfig, expected: ModelConfig | None, where: Path) -> ModelConfig:
    if expected is not None and found != expected:
        diff = {
            k: (v, expected.to_dict()[k]) for k, v in found.to_dict().items() if expected.to_dict()[k] != v
        }
        raise ConfigMismatchError(
            f"{where}: config does not match the registered model {expected.name!r}; "
            f"differences (found, registered): {diff}"
        )
    return found


def verify_sha256(path: Path, expected_sha256: str | None, remedy: str = "delete it to download it again") -> str:
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise WeightsIntegrityError(
            f"{path}: sha256 {digest} does not match the registered {expected_sha256}; "
            f"the file is corrupt or has been modified ({remedy})"
        )
    return digest


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
