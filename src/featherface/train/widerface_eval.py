"""Run a detector over WIDER FACE val and score it with the official protocol (the scorer itself is
:mod:`featherface.train.ap`).

Protocol, that of the authors' ``test_widerface.py`` (RetinaFace PyTorch implementation, github
biubug6/Pytorch_Retinaface, and the FeatherFace repository): every image at its original size, BGR minus
the model mean, score threshold 0.02, greedy NMS at IoU 0.4 with the "+1" convention, no top-k caps
(the script parses ``--top_k`` and ``--keep_top_k`` but never applies them); predictions in
the official per-image text format; Easy / Medium / Hard AP from :func:`evaluate_widerface`
(global score normalisation, IoU 0.5, 1,000 thresholds, VOC all-point AP).

Dataset layout (what ``shared/scripts/assemble_widerface.py`` writes)::

    ROOT/val/images/<event>/<name>.jpg
    ROOT/ground_truth/wider_{face,easy,medium,hard}_val.mat
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featherface._api import FaceDetector
from featherface._models.config import ModelConfig
from featherface._options import DetectorOptions
from featherface.train.ap import evaluate_widerface, plot_pr_curves, write_predictions
from featherface.train.modes import eval_mode
from featherface.train.progress import progress_bar

__all__ = [
    "PROTOCOL",
    "PROTOCOL_OPTIONS",
    "val_images",
    "ground_truth_dir",
    "fixed_subset",
    "predict_widerface",
    "vars_of",
    "evaluate_detector_on_widerface",
]

logger = logging.getLogger(__name__)

PROTOCOL = "WIDER FACE val, original image size, score > 0.02, NMS IoU 0.4 (+1), no top-k, official AP"
PROTOCOL_OPTIONS = DetectorOptions(
    score_threshold=0.02, iou_threshold=0.4, pre_nms_top_k=None, max_detections=None,
    input_size=None, max_size=None, legacy_nms=True, max_input_pixels=100_000_000,
)


def val_images(root: str | os.PathLike) -> list[Path]:
    """All ``ROOT/val/images/<event>/*.jpg`` sorted by relative path."""
    images_dir = Path(root) / "val" / "images"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"no WIDER FACE val images under {images_dir}")
    files = sorted(images_dir.glob("*/*.jpg"))
    if not files:
        raise FileNotFoundError(f"{images_dir} holds no <event>/<name>.jpg files")
    return files


def ground_truth_dir(root: str | os.PathLike) -> Path:
    for cand in (Path(root) / "ground_truth", Path(root) / "val" / "ground_truth"):
        if (cand / "wider_face_val.mat").is_file():
            return cand
    raise FileNotFoundError(f"no ground_truth/wider_face_val.mat under {root}")


def fixed_subset(files: Sequence[Path], n: int | None, seed: int = 0) -> list[Path]:
    """A fixed, seeded subset of ``n`` images (the whole list when ``n`` is None or too large)."""
    if n is None or n >= len(files):
        return list(files)
    idx = np.sort(np.random.default_rng(seed).choice(len(files), size=n, replace=False))
    return [files[i] for i in idx]


def predict_widerface(
    detector: FaceDetector,
    files: Sequence[Path],
    out_dir: str | os.PathLike,
    *,
    max_size: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Write official-format predictions for ``files`` into ``out_dir/<event>/<stem>.txt``.

    ``max_size`` departs from the protocol (downscales large images) and is for quick learning
    curves only. Returns timing statistics.
    """
    opts = PROTOCOL_OPTIONS.updated(max_size=max_size)
    out = Path(out_dir)
    bar = progress_bar(len(files), unit="img", enabled=progress)
    t0 = time.perf_counter()
    n_boxes = 0
    for path in files:
        faces = detector.detect(path, **vars_of(opts))
        boxes = np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4)
        scores = np.array([f.score for f in faces], dtype=np.float32)
        write_predictions(out / path.parent.name / f"{path.stem}.txt", path.stem, boxes, scores)
        n_boxes += len(faces)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    dt = time.perf_counter() - t0
    return {"images": float(len(files)), "boxes": float(n_boxes), "seconds": dt,
            "images_per_s": len(files) / max(dt, 1e-9)}


def vars_of(opts: DetectorOptions) -> dict[str, Any]:
    return dataclasses.asdict(opts)


def evaluate_detector_on_widerface(
    model: nn.Module | FaceDetector,
    config: ModelConfig | None,
    root: str | os.PathLike,
    *,
    subset: int | None = None,
    max_size: int | None = None,
    device: str | torch.device | None = None,
    pred_dir: str | os.PathLike | None = None,
    gt_dir: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict on WIDER FACE val (or a fixed subset) and return ``{"easy", "medium", "hard", ...}``.

    ``model`` is a network (with its ``config``) or a :class:`FaceDetector`. With ``subset`` only those
    images are predicted *and* scored (faces of other images are not counted). Predictions go to
    ``pred_dir`` (a temporary folder when None).
    """
    with contextlib.ExitStack() as stack:
        if isinstance(model, FaceDetector):
            detector = model
        else:
            assert config is not None
            stack.enter_context(eval_mode(model))  # a training run's network gets its mode back afterwards
            detector = FaceDetector(model, config, device=device)
        files = fixed_subset(val_images(root), subset)
        gt = Path(gt_dir) if gt_dir is not None else ground_truth_dir(root)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(pred_dir) if pred_dir is not None else Path(tmp)
            timing = predict_widerface(detector, files, out, max_size=max_size, progress=progress)
            names = None if subset is None else [p.stem for p in files]
            res = evaluate_widerface(out, gt, images=names, return_curves=plot is not None)
    if plot is not None:
        plot_pr_curves(res.pop("curves"), plot, title=f"{detector.name}: WIDER FACE val, official protocol")
    res.update(timing)
    res["protocol"] = PROTOCOL if max_size is None else f"{PROTOCOL}, except images downscaled to max side {max_size}"
    res["num_images"] = len(files)
    return res
