"""featherface: lightweight face detection (FeatherFace V1 and V2 Ultra).

>>> import featherface
>>> det = featherface.load_model("v2_ultra")          # doctest: +SKIP
>>> faces = det.detect("photo.jpg")                    # doctest: +SKIP

Public names are loaded lazily so that ``import featherface`` stays cheap (no torch model code,
no OpenCV, no Hub client until used). The public submodules (:data:`SUBMODULES`) are attributes too,
imported on first access: ``import featherface; featherface.io.load_image(...)`` works without
``import featherface.io``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featherface._version import __version__

if TYPE_CHECKING:
    from featherface.api import DetectorOptions, FaceDetector, load_model
    from featherface.config import ModelConfig, PriorConfig, V2UltraTechniques
    from featherface.registry import build_model, list_models
    from featherface.types import Detection, detections_to_arrays
    from featherface.visualize import draw

__all__ = [
    "__version__",
    "load_model",
    "list_models",
    "build_model",
    "FaceDetector",
    "DetectorOptions",
    "Detection",
    "detections_to_arrays",
    "draw",
    "ModelConfig",
    "PriorConfig",
    "V2UltraTechniques",
]

_LAZY = {
    "load_model": "featherface.api",
    "FaceDetector": "featherface.api",
    "DetectorOptions": "featherface.api",
    "list_models": "featherface.registry",
    "build_model": "featherface.registry",
    "Detection": "featherface.types",
    "detections_to_arrays": "featherface.types",
    "draw": "featherface.visualize",
    "ModelConfig": "featherface.config",
    "PriorConfig": "featherface.config",
    "V2UltraTechniques": "featherface.config",
}


SUBMODULES: frozenset[str] = frozenset({
    "api", "backends", "bench", "box_coder", "cli", "config", "convert", "export", "export_cli", "fuse",
    "hub", "integrations", "io", "models", "ops", "postprocess", "priors", "registry", "stream", "train",
    "types", "visualize",
})
"""Submodules reachable as ``featherface.<name>`` without importing them first (imported on access)."""


def __getattr__(name: str) -> Any:
    if name in SUBMODULES:  # importing a submodule also binds it here (the import system does that)
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'featherface' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *SUBMODULES})
