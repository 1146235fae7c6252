"""featherface's own cache folder (one implementation: the local weights store and the ONNX cache
of the ONNX Runtime engine are both under it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["featherface_cache_dir"]


def featherface_cache_dir() -> Path:
    """featherface's own cache root: ``$FEATHERFACE_CACHE``, else ``$XDG_CACHE_HOME/featherface``, else
    ``~/.cache/featherface`` (the root of the ONNX cache of :mod:`featherface._engines.onnxruntime` too).

    Hub downloads do not go here: they stay in the Hugging Face cache (``HF_HOME``/``HF_HUB_CACHE``).
    """
    root = os.environ.get("FEATHERFACE_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "featherface"
