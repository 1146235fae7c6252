"""featherface: lightweight face detection (FeatherFace V1 and V2 Ultra).

>>> import featherface
>>> det = featherface.load_model("v2_ultra")          # doctest: +SKIP
>>> faces = det.detect("photo.jpg")                    # doctest: +SKIP

Public names are loaded lazily so that ``import featherface`` stays cheap (no torch model code,
no OpenCV, no Hub client until used). The public submodules (:data:`SUBMODULES`) are attributes too,
imported on first access: ``import featherface; featherface.io.load_image(...)`` works without
``import featherface.io``.

What is public, all of it: the names of ``__all__`` below (the exception types a caller may catch are
defined in :mod:`featherface.errors`) and the modules of :data:`SUBMODULES`: :mod:`featherface.errors`,
:mod:`featherface.io` (image loading), :mod:`featherface.detection` (result types),
:mod:`featherface.pipeline` (the detection stages), :mod:`featherface.integrations.ray`,
:mod:`featherface.train` (training, its own surface) and :mod:`featherface.cli` (the command line, whose
interface is the ``featherface`` command). Modules whose name starts with an underscore (``_api``,
``_engines``, ``_weights``, ``_models``, ``_ops``...) are machinery: they may change in any 0.x release.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featherface._version import __version__
from featherface.errors import __all__ as _ERROR_NAMES

if TYPE_CHECKING:
    from featherface._align import align, align_faces
    from featherface._api import FaceDetector, load_model
    from featherface._export import export_onnx
    from featherface._models.config import ModelConfig, PriorConfig, V2UltraTechniques
    from featherface._options import DetectorOptions
    from featherface._visualize import draw
    from featherface._weights.files import save_weights_folder
    from featherface._weights.registry import build_model, list_models
    from featherface.detection import Detection, detections_to_arrays
    from featherface.errors import (
        ConfigMismatchError,
        ConversionError,
        DeviceError,
        ImageError,
        UnknownModelError,
        WeightsError,
        WeightsIntegrityError,
        WeightsNotInstalledError,
    )

_LAZY = {
    "load_model": "featherface._api",
    "FaceDetector": "featherface._api",
    "DetectorOptions": "featherface._options",
    "list_models": "featherface._weights.registry",
    "build_model": "featherface._weights.registry",
    "Detection": "featherface.detection",
    "detections_to_arrays": "featherface.detection",
    "draw": "featherface._visualize",
    "align": "featherface._align",
    "align_faces": "featherface._align",
    "ModelConfig": "featherface._models.config",
    "PriorConfig": "featherface._models.config",
    "V2UltraTechniques": "featherface._models.config",
    "export_onnx": "featherface._export",
    "save_weights_folder": "featherface._weights.files",
    **dict.fromkeys(_ERROR_NAMES, "featherface.errors"),  # every exception type a caller may catch
}
"""Public name -> the module that defines it (imported on first access)."""

__all__ = [
    "__version__",
    "load_model",
    "FaceDetector",
    "DetectorOptions",
    "list_models",
    "build_model",
    "Detection",
    "detections_to_arrays",
    "draw",
    "align",
    "align_faces",
    "ModelConfig",
    "PriorConfig",
    "V2UltraTechniques",
    "export_onnx",
    "save_weights_folder",
    # featherface.errors (a test keeps this list, _LAZY and errors.__all__ in step)
    "ImageError",
    "DeviceError",
    "UnknownModelError",
    "WeightsError",
    "WeightsIntegrityError",
    "ConfigMismatchError",
    "WeightsNotInstalledError",
    "ConversionError",
]


SUBMODULES: frozenset[str] = frozenset({"cli", "detection", "errors", "integrations", "io", "pipeline", "train"})
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
