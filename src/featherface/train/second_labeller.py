"""A second labeller for teacher pseudo-labels: OpenCV's YuNet (``cv2.FaceDetectorYN``).

The V1 teacher is unsure of many small faces: :func:`featherface.train.pseudo.label_unlabelled` turns
its detections scoring 0.2-0.6 into *ignore* regions, so the student learns nothing there. YuNet, a
different network (opencv_zoo ``face_detection_yunet``, MIT), scores many of those faces confidently.
:func:`relabel` reads a labels file of that format and, per image:

* an ignore region that a confident YuNet face (score ``>= min_score``) overlaps at IoU
  ``>= match_iou`` becomes a face, with YuNet's box and five landmarks (the two labellers agree);
* a confident YuNet face that overlaps no teacher face and no ignore region (IoU ``< match_iou``
  with all of them) becomes an ignore region (one labeller only: neither reward nor punish);
* the teacher's faces stay as they are.

The YuNet model file is not part of featherface (users get it from OpenCV's model zoo). Never run
this on WIDER FACE val: it is the benchmark.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from featherface._ops.boxes import box_iou
from featherface.train.data import load_image_bgr
from featherface.train.progress import progress_bar
from featherface.train.pseudo import check_not_val

__all__ = ["SecondLabelPolicy", "create_yunet", "merge_labels", "relabel", "yunet_faces"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecondLabelPolicy:
    """``min_score``: YuNet score of a face it vouches for; ``match_iou``: IoU at which a YuNet face and a
    teacher region are the same face; ``max_side``: YuNet's input is the image with its longer side
    capped at this (boxes are mapped back to original pixels)."""

    min_score: float = 0.8
    match_iou: float = 0.5
    max_side: int = 2048

    def __post_init__(self) -> None:
        if not 0.0 < self.min_score <= 1.0 or not 0.0 < self.match_iou <= 1.0 or self.max_side <= 0:
            raise ValueError("SecondLabelPolicy: need 0 < min_score <= 1, 0 < match_iou <= 1, max_side > 0; got "
                             f"{self.min_score}, {self.match_iou}, {self.max_side}")


def create_yunet(model: str | os.PathLike, score_threshold: float = 0.02, nms_threshold: float = 0.4,
                 top_k: int = 5000) -> cv2.FaceDetectorYN:
    """A YuNet detector from its ONNX file; raises ``FileNotFoundError`` naming a missing file."""
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"no YuNet model file at {path}")
    return cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)


def yunet_faces(detector: cv2.FaceDetectorYN, image_bgr: np.ndarray,
                max_side: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YuNet on one BGR ``uint8 [H, W, 3]`` image (not modified).

    The image runs at its own size, or downscaled so that its longer side is ``max_side``.

    Returns:
        ``(boxes [N, 4], landmarks [N, 5, 2], scores [N])`` float32 in original-image pixels; boxes are
        corners ``(x1, y1, x2, y2)`` (YuNet gives ``(x, y, w, h)``), landmarks in YuNet's order, which in
        image coordinates is this project's: the eye with the smaller x on a frontal face first, then
        the other eye, the nose tip, and the two mouth corners in the same left-right order.
    """
    h, w = image_bgr.shape[:2]
    scale = 1.0
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        image_bgr = cv2.resize(image_bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
    detector.setInputSize((image_bgr.shape[1], image_bgr.shape[0]))
    _, faces = detector.detect(image_bgr)
    if faces is None or len(faces) == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32)
    faces = np.asarray(faces, np.float32)
    coords = faces[:, :14] / np.float32(scale)  # box and landmarks back to original pixels; column 14: score
    boxes = coords[:, :4].copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes, coords[:, 4:14].reshape(-1, 5, 2).copy(), faces[:, 14].copy()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    return box_iou(torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.asarray(b, np.float32))).numpy()


def merge_labels(record: dict[str, Any], boxes: np.ndarray, landmarks: np.ndarray, scores: np.ndarray,
                 policy: SecondLabelPolicy) -> tuple[dict[str, Any], dict[str, int]]:
    """One labels record (``{"image", "faces", "scores"?, "ignore"?}``, not modified) merged with YuNet's
    detections of its image (:func:`yunet_faces`); returns the new record and counts of what changed.
    Promoted faces get YuNet's score in ``"scores"`` and are listed in ``"second_labeller"`` by index."""
    sure = scores >= policy.min_score
    y_boxes, y_lms, y_scores = boxes[sure], landmarks[sure], scores[sure]
    faces = list(record["faces"])
    face_scores = list(record.get("scores", [None] * len(faces)))
    ignore = [list(b) for b in record.get("ignore", [])]
    teacher_boxes = np.array([f["box"] for f in faces], np.float32).reshape(-1, 4)
    ignore_boxes = np.array(ignore, np.float32).reshape(-1, 4)
    iou_ignore = _iou(ignore_boxes, y_boxes)  # [K, Y]
    used = np.zeros(len(y_boxes), bool)
    kept_ignore, promoted = [], []
    for k in range(len(ignore_boxes)):
        cand = np.where(~used & (iou_ignore[k] >= policy.match_iou))[0] if len(y_boxes) else np.zeros(0, int)
        if len(cand) == 0:
            kept_ignore.append(ignore[k])
            continue
        j = int(cand[np.argmax(iou_ignore[k, cand])])
        used[j] = True
        promoted.append(len(faces))
        faces.append({"box": [float(v) for v in y_boxes[j]],
                      "landmarks": [[float(x), float(y)] for x, y in y_lms[j]]})
        face_scores.append(round(float(y_scores[j]), 4))
    covered = (_iou(teacher_boxes, y_boxes).max(axis=0, initial=0.0) >= policy.match_iou) | \
              (iou_ignore.max(axis=0, initial=0.0) >= policy.match_iou) if len(y_boxes) else np.zeros(0, bool)
    added = [[float(v) for v in y_boxes[j]] for j in range(len(y_boxes)) if not used[j] and not covered[j]]
    out = {**record, "faces": faces, "scores": face_scores, "ignore": kept_ignore + added}
    if promoted or "second_labeller" in record:
        out["second_labeller"] = list(record.get("second_labeller", [])) + promoted
    return out, {"promoted": len(promoted), "added_ignore": len(added)}


def relabel(labels_jsonl: str | os.PathLike, images_root: str | os.PathLike, detector: cv2.FaceDetectorYN,
            out_jsonl: str | os.PathLike, *, policy: SecondLabelPolicy | None = None,
            progress: bool = True) -> dict[str, int]:
    """Every record of ``labels_jsonl`` merged with YuNet (:func:`merge_labels`), written to ``out_jsonl``
    in the same order. Resumable: the records already in ``out_jsonl`` are kept and skipped. An image
    that cannot be read keeps its record unchanged and is counted."""
    policy = policy or SecondLabelPolicy()
    src, out, root = Path(labels_jsonl), Path(out_jsonl), Path(images_root)
    if src.resolve() == out.resolve():
        raise ValueError(f"relabel: the output {out} would overwrite its input")
    lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    done = 0
    if out.exists():
        done = sum(1 for line in out.read_text(encoding="utf-8").splitlines() if line.strip())
    stats = {"images": 0, "promoted": 0, "added_ignore": 0, "unreadable": 0, "skipped_done": done}
    bar = progress_bar(len(lines) - done, unit="img", enabled=progress)
    with out.open("a", encoding="utf-8") as handle:
        for raw in lines[done:]:
            record = json.loads(raw)
            check_not_val(root / record["image"])
            try:
                image = load_image_bgr(root / record["image"])
            except (OSError, ValueError) as exc:
                logger.warning("keeping the labels of %s unchanged: %s", record["image"], exc)
                stats["unreadable"] += 1
                merged = record
            else:
                merged, counts = merge_labels(record, *yunet_faces(detector, image, policy.max_side), policy)
                stats["promoted"] += counts["promoted"]
                stats["added_ignore"] += counts["added_ignore"]
            handle.write(json.dumps(merged) + "\n")
            handle.flush()
            stats["images"] += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return stats
