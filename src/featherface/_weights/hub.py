"""Hugging Face Hub transport: fetch the pinned weights of a registered model (its cache,
``HF_HOME``/``cache_dir``, ``HF_HUB_OFFLINE`` and ``local_files_only`` are honoured).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from featherface._weights.files import ResolvedWeights, check_config, read_config, verify_sha256
from featherface._weights.registry import ModelSpec, get_spec
from featherface.errors import WeightsError

__all__ = ["hub_errors", "resolve_hub", "download_weights"]


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


def resolve_hub(
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
    config = check_config(read_config(cfg_path), spec.config, cfg_path)
    # a revision other than the pinned one is the caller's choice: its hash is not registered
    expected = w.sha256 if revision in (None, w.revision) else None
    return ResolvedWeights(model_path, config, "hub", verify_sha256(model_path, expected))


def download_weights(
    names: list[str], *, cache_dir: str | os.PathLike | None = None
) -> dict[str, ResolvedWeights]:
    """Fetch the pinned weights of ``names`` into the Hub cache (for air-gapped machines)."""
    out = {}
    for name in names:
        spec = get_spec(name)
        if spec.weights is None:
            raise WeightsError(f"model {name!r} has no published weights")
        if spec.weights.revision is None:
            raise WeightsError(
                f"model {name!r} is not on the Hugging Face Hub yet; its weights ship inside the package"
            )
        out[name] = resolve_hub(spec, None, cache_dir, False)
    return out
