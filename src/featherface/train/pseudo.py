"""Teacher pseudo-labels written as JSON lines (:func:`featherface.train.data.read_jsonl` format).

* :func:`label_landmarks`: annotated faces without landmarks (WIDER FACE train) get the landmarks
  of the best-overlapping teacher detection (IoU >= 0.5); the official boxes are kept as they are and
  faces the teacher does not find stay without landmarks (their landmark loss is masked).
* :func:`label_unlabelled`: photographs without any labels get the teacher's confident detections
  as boxes + landmarks.

Never run these on WIDER FACE val: it is the benchmark.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from featherface.pipeline import BatchSpec, make_batch
from featherface.train.data import FaceSample, load_image_bgr, write_jsonl
from featherface.train.distill import teacher_landmarks_for_boxes, teacher_pseudo_labels

__all__ = ["label_landmarks", "label_unlabelled"]

logger = logging.getLogger(__name__)


def _to_input(image_bgr: np.ndarray, mean_bgr: Sequence[float], device: torch.device) -> torch.Tensor:
    return make_batch([image_bgr], mean_bgr, BatchSpec(device=torch.device(device)))


def _load_for_teacher(path: Path, max_side: int | None) -> tuple[np.ndarray, int, int]:
    """BGR image downscaled to ``max_side`` for the teacher pass, and its original ``(h, w)``."""
    import cv2

    img = load_image_bgr(path)
    h, w = img.shape[:2]
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return img, h, w


def _check_not_val(path: Path) -> None:
    if any(part.lower() in ("wider_val", "val") for part in path.parts[-4:-1]):
        raise ValueError(f"{path}: refusing to pseudo-label a WIDER FACE val image (val is for evaluation only)")


def label_landmarks(
    teacher: nn.Module,
    samples: Sequence[FaceSample],
    out_jsonl: str | os.PathLike,
    images_root: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    max_side: int | None = 1600,
    progress: bool = True,
) -> dict[str, int]:
    """Add teacher landmarks to faces that lack them; write all samples to ``out_jsonl``.

    ``max_side`` downscales very large images for the teacher pass (coordinates are normalised, so
    the result is independent of the scale up to the teacher's accuracy).
    """
    dev = torch.device(device)
    mean = teacher.config.mean_bgr  # type: ignore[attr-defined]
    out: list[FaceSample] = []
    stats = {"images": 0, "faces": 0, "found": 0}
    it = _progress(samples, progress)
    for s in it:
        _check_not_val(Path(s.image_path))
        img, h, w = _load_for_teacher(Path(s.image_path), max_side)
        need = ~s.has_landmarks
        landmarks = s.landmarks.copy()
        has = s.has_landmarks.copy()
        if need.any():
            boxes = torch.from_numpy(s.boxes[need] / np.array([w, h, w, h], np.float32))
            ldm, found = teacher_landmarks_for_boxes(teacher, _to_input(img, mean, dev), boxes.to(dev))
            ldm = ldm.cpu().numpy().reshape(-1, 5, 2) * np.array([w, h], np.float32)
            found_np = found.cpu().numpy()
            idx = np.flatnonzero(need)
            landmarks[idx[found_np]] = ldm[found_np]
            has[idx[found_np]] = True
            stats["found"] += int(found_np.sum())
        stats["faces"] += int(need.sum())
        stats["images"] += 1
        out.append(FaceSample(Path(s.image_path), s.boxes, landmarks, has))
    write_jsonl(out, out_jsonl, images_root)
    logger.info("teacher landmarks for %d of %d faces in %d images", stats["found"], stats["faces"], stats["images"])
    return stats


def label_unlabelled(
    teacher: nn.Module,
    image_paths: Sequence[str | os.PathLike],
    out_jsonl: str | os.PathLike,
    images_root: str | os.PathLike,
    *,
    score_threshold: float = 0.6,
    min_size_px: float = 8.0,
    device: str | torch.device = "cpu",
    max_side: int | None = 1600,
    progress: bool = True,
) -> dict[str, int]:
    """Teacher detections (score > ``score_threshold``) as labels for unlabelled photographs."""
    dev = torch.device(device)
    mean = teacher.config.mean_bgr  # type: ignore[attr-defined]
    out: list[FaceSample] = []
    stats = {"images": 0, "faces": 0, "unreadable": 0}
    for p in _progress(image_paths, progress):
        path = Path(p)
        _check_not_val(path)
        try:
            img, h, w = _load_for_teacher(path, max_side)
        except (OSError, ValueError) as exc:
            logger.warning("skipping %s: %s", path, exc)
            stats["unreadable"] += 1
            continue
        hh, ww = img.shape[:2]
        rows = teacher_pseudo_labels(teacher, _to_input(img, mean, dev), score_threshold=score_threshold,
                                     min_size_px=min_size_px * hh / h).cpu().numpy()
        boxes = rows[:, :4] * np.array([w, h, w, h], np.float32)
        ldm = rows[:, 4:14].reshape(-1, 5, 2) * np.array([w, h], np.float32)
        out.append(FaceSample(path, boxes, ldm, np.ones(len(rows), bool)))
        stats["images"] += 1
        stats["faces"] += len(rows)
    write_jsonl(out, out_jsonl, images_root)
    return stats


def _progress(items: Sequence, enabled: bool):  # type: ignore[no-untyped-def]
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm

        return tqdm(items, unit="img", dynamic_ncols=True, mininterval=2.0)
    except ImportError:  # pragma: no cover
        return items
