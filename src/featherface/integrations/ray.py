"""Face detection over Ray Data datasets (``pip install "featherface[ray]"``).

:class:`RayFaceDetector` is a callable class for ``Dataset.map_batches``: Ray creates it once per
actor (so the model is loaded once per actor) and calls it on batches::

    import ray
    from featherface.integrations.ray import RayFaceDetector

    ds = ray.data.read_binary_files("photos/", include_paths=True)      # columns: bytes, path
    ds = ds.map_batches(
        RayFaceDetector, fn_constructor_kwargs={"model": "v2_ultra", "weights": "my_weights/"},
        compute=ray.data.ActorPoolStrategy(size=4),   # Ray < 2.40: concurrency=4
        batch_size=16, batch_format="numpy",
    )
    for row in ds.iter_rows():
        print(row["path"], row["scores"])

Input: a batch (``dict`` of numpy arrays) with an image column: ``image`` (encoded file bytes, or
decoded ``H x W x 3`` arrays as ``ray.data.read_images`` gives, RGB unless ``color="bgr"``),
``bytes`` (``read_binary_files``) or ``path`` (file paths); the first one present is used, or the
one named by ``column=``.

Output: the input columns plus, per row, ``boxes`` (``float32 [n, 4]``, ``x1, y1, x2, y2`` in original
pixels), ``scores`` (``float32 [n]``), ``landmarks`` (``float32 [n, 5, 2]``) and ``error`` (``""``, or
the message of the exception that prevented reading that image: a bad image does not fail the job;
its arrays are empty). Detection equals ``featherface.load_model(...).detect(image)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from featherface.detection import detections_to_arrays
from featherface.io import ColorOrder

IMAGE_COLUMNS = ("image", "bytes", "path")
"""Columns searched, in this order, for the images of a batch (unless ``column=`` is given)."""


class RayFaceDetector:
    """Callable class for ``ray.data.Dataset.map_batches(RayFaceDetector, batch_format="numpy", ...)``.

    Args:
        model: registered model name (default ``"v2_ultra"``), as for :func:`featherface.load_model`;
            ``None`` with ``weights=`` a folder: the model named by the folder's ``config.json``.
        weights: your weights folder or ``.safetensors`` file (``None``: the published weights).
        column: the image column (default: the first of ``image``, ``bytes``, ``path`` in the batch).
        batch_size: images per network call (images of the same size are batched together).
        color: channel order of decoded array columns (``"rgb"``, as ``ray.data.read_images`` gives).
        torch_threads: ``torch.set_num_threads`` in each actor, also the detector's ``num_threads``
            (default: leave Ray's setting, which follows the actor's ``num_cpus``, and the detector's
            per-call policy).
        **options: other :func:`featherface.load_model` arguments (``device``, ``pretrained``...) and
            :class:`featherface.DetectorOptions` (``score_threshold``, ``max_size``...).
            ``pretrained=False`` (tests only) gives every actor its own random network.
    """

    def __init__(
        self,
        model: str | None = "v2_ultra",
        weights: str | os.PathLike | None = None,
        *,
        column: str | None = None,
        batch_size: int = 8,
        color: ColorOrder = "rgb",
        torch_threads: int | None = None,
        **options: Any,
    ) -> None:
        import torch

        from featherface._api import load_model

        if torch_threads:
            torch.set_num_threads(torch_threads)
            # the detector sets its thread count per call: pass the actor's count on, or it would run
            # small inputs on one thread (featherface._engines.torch_runner.SINGLE_THREAD_MAX_PIXELS)
            options.setdefault("num_threads", torch_threads)
        self.detector = load_model(model, weights=weights, **options)
        self.column, self.batch_size, self.color = column, batch_size, color

    def _column(self, batch: Mapping[str, Any]) -> str:
        if self.column is not None:
            if self.column not in batch:
                raise KeyError(f"RayFaceDetector: no column {self.column!r} in the batch (columns: {sorted(batch)})")
            return self.column
        for name in IMAGE_COLUMNS:
            if name in batch:
                return name
        raise KeyError(f"RayFaceDetector: the batch needs an 'image', 'bytes' or 'path' column; got {sorted(batch)}")

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        name = self._column(batch)
        values = batch[name]
        if name == "path":
            items: list[Any] = [str(v) for v in values]
        else:
            items = [v if isinstance(v, np.ndarray) and v.dtype != object else _as_image(v) for v in values]
        n = len(items)
        boxes, scores, landmarks = (np.empty(n, dtype=object) for _ in range(3))
        errors = np.empty(n, dtype=object)
        for i, (_, result) in enumerate(self.detector.detect_stream(items, batch_size=self.batch_size,
                                                                    color=self.color)):
            if isinstance(result, Exception):
                result, errors[i] = [], f"{type(result).__name__}: {result}"
            else:
                errors[i] = ""
            b, s, lm = detections_to_arrays(result)
            boxes[i] = b.astype(np.float32)
            scores[i] = s.astype(np.float32)
            landmarks[i] = lm.astype(np.float32).reshape(-1, 5, 2)
        return {**batch, "boxes": boxes, "scores": scores, "landmarks": landmarks, "error": errors}


def _as_image(value: Any) -> Any:
    """Encoded bytes stay bytes; an object-array element holding an array becomes that array."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return value


__all__ = ["IMAGE_COLUMNS", "RayFaceDetector"]
