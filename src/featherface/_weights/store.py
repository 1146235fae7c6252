"""The local store of installed weights: ``<featherface cache>/installed/<name>/``.

A registered model without published weights (``v1``: the authors' release, which featherface may not
ship) is installed here by ``featherface convert-reference PATH`` (:func:`install_weights`). Its
``SOURCE.json`` records the source file, its sha256, the licence and the sha256 of
``model.safetensors``, which is verified on every load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from featherface._cache import featherface_cache_dir
from featherface._models.config import ModelConfig
from featherface._weights.files import CONFIG_FILENAME, MODEL_FILENAME, save_weights_folder, sha256_file

__all__ = ["SOURCE_FILENAME", "installed_weights_dir", "is_installed", "read_install_record", "install_weights"]

SOURCE_FILENAME = "SOURCE.json"
"""Provenance record of an installed weights folder (source file, sha256s, licence)."""


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
