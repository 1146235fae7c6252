"""Teacher pseudo-labels written as JSON lines (:func:`featherface.train.data.read_jsonl` format).

* :func:`teacher_landmarks_for_boxes`: the teacher's landmarks for given boxes of one network input;
* :func:`label_landmarks`: annotated faces without landmarks (WIDER FACE train) get the landmarks
  of the best-overlapping teacher detection (IoU >= 0.5); the official boxes are kept as they are and
  faces the teacher does not find stay without landmarks (their landmark loss is masked).
* :func:`label_unlabelled`: photographs without any labels get the teacher's confident detections
  as boxes + landmarks, and its unsure ones as ignore regions (:class:`TeacherLabelPolicy`).

Never run these on WIDER FACE val: it is the benchmark.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from featherface._engines.base import BatchSpec
from featherface._models.config import PriorConfig
from featherface._ops.boxes import box_iou
from featherface._options import DetectorOptions
from featherface.pipeline import RawDetections, make_batch, postprocess
from featherface.train.augment import normalise_to_image
from featherface.train.data import FaceSample, load_image_bgr, write_jsonl
from featherface.train.modes import eval_mode
from featherface.train.progress import progress_bar

if TYPE_CHECKING:
    from featherface._api import FaceDetector
    from featherface.detection import Detection

__all__ = ["TeacherLabelPolicy", "check_not_val", "label_landmarks", "label_unlabelled", "teacher_labels", "teacher_landmarks_for_boxes"]

logger = logging.getLogger(__name__)


def _prior_cfg(model: nn.Module, prior_cfg: PriorConfig | None) -> PriorConfig:
    if prior_cfg is not None:
        return prior_cfg
    config = getattr(model, "config", None)
    return getattr(config, "priors", None) or PriorConfig()


@torch.no_grad()
def _detect(
    teacher: nn.Module,
    image: torch.Tensor,
    options: DetectorOptions,
    prior_cfg: PriorConfig | None,
) -> RawDetections:
    """Run ``teacher`` on ``image[1, 3, H, W]`` and post-process; detections in input pixels."""
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ValueError(f"expected one image [1, 3, H, W] (BGR minus mean), got {tuple(image.shape)}")
    h, w = int(image.shape[2]), int(image.shape[3])
    param = next(teacher.parameters(), None)
    x = image.to(device=param.device, dtype=param.dtype) if param is not None else image
    cfg = _prior_cfg(teacher, prior_cfg)
    with eval_mode(teacher):
        loc, logits, ldm = teacher(x)
    return postprocess((loc, logits, ldm), (h, w), cfg, options)[0]


@torch.no_grad()
def teacher_landmarks_for_boxes(
    teacher: nn.Module,
    image: torch.Tensor,
    boxes: torch.Tensor,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    nms_iou: float = 0.4,
    prior_cfg: PriorConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks predicted by the teacher for annotated boxes that lack them.

    Args:
        teacher: network mapping ``x[1, 3, H, W]`` to raw ``(loc, logits, landmarks)``; run in eval
            mode (its mode is restored).
        image: ``[1, 3, H, W]`` BGR minus the mean, the input the boxes refer to.
        boxes: ``[M, 4]`` GT boxes ``(x1, y1, x2, y2)`` normalised by ``(W, H)``.
        iou_threshold: a GT takes the landmarks of its best-overlapping teacher detection only
            when their IoU is >= this.
        score_threshold: teacher detections kept before NMS have a face score above this.
        nms_iou: NMS overlap of the teacher's post-processing.
        prior_cfg: anchor layout (default: ``teacher.config.priors`` or :class:`PriorConfig`).

    Returns:
        ``(landmarks[M, 10], found[M] bool)`` on ``boxes``' device: landmarks ``(x0, y0, ..., x4, y4)``
        normalised by ``(W, H)`` and clamped to ``[0, 1]``; rows with ``found`` False are zero. The
        teacher's boxes are clipped to the image before the IoU (GT boxes are clipped to it too).
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"teacher_landmarks_for_boxes: boxes must be [M, 4], got {tuple(boxes.shape)}")
    m = boxes.shape[0]
    out_dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    landmarks = torch.zeros(m, 10, dtype=out_dtype, device=boxes.device)
    found = torch.zeros(m, dtype=torch.bool, device=boxes.device)
    if m == 0:
        return landmarks, found
    h, w = int(image.shape[2]), int(image.shape[3])
    det = _detect(
        teacher,
        image,
        DetectorOptions(score_threshold=score_threshold, iou_threshold=nms_iou),
        prior_cfg,
    )
    if det.boxes.shape[0] == 0:
        return landmarks, found
    det_boxes = normalise_to_image(det.boxes, w, h)  # [K, 4], clipped to the image
    det_ldm = normalise_to_image(det.landmarks.reshape(-1, 10), w, h)  # [K, 10]
    iou = box_iou(boxes.to(det_boxes), det_boxes)  # [M, K]
    best_iou, best = iou.max(dim=1)
    ok = best_iou >= iou_threshold
    found = ok.to(boxes.device)
    landmarks = torch.where(ok[:, None], det_ldm[best], torch.zeros_like(det_ldm[best]))
    logger.debug(
        "teacher landmarks: %d of %d boxes matched (%d detections)", int(ok.sum()), m, len(det_boxes)
    )
    return landmarks.to(device=boxes.device, dtype=out_dtype), found



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


def check_not_val(path: Path) -> None:
    """Refuse an image whose folder says WIDER FACE val (the benchmark is never labelled or trained on)."""
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
    bar = progress_bar(len(samples), unit="img", enabled=progress)
    for s in samples:
        check_not_val(Path(s.image_path))
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
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    write_jsonl(out, out_jsonl, images_root)
    logger.info("teacher landmarks for %d of %d faces in %d images", stats["found"], stats["faces"], stats["images"])
    return stats


@dataclass(frozen=True)
class TeacherLabelPolicy:
    """How teacher detections become labels for an unlabelled photograph.

    * detections with score ``>= face_threshold`` and short side ``>= min_face_px`` (original pixels)
      become faces (box + 5 landmarks);
    * detections with score in ``[ignore_threshold, face_threshold)``, or confident ones smaller than
      ``min_face_px``, become *ignore* regions: the student is neither rewarded nor punished there
      (the matcher excludes the anchors that overlap them from the negatives);
    * the teacher runs at the original size, the longer side capped at ``max_side``; when that pass
      finds a face (score ``>= ignore_threshold``) whose short side is below ``upscale_below_px``
      network pixels, it runs again on the image upscaled by ``upscale`` (longer side capped at
      ``max_side``), and the small faces of the upscaled pass (short side below ``upscale_below_px``
      in original pixels) are merged with the first pass by NMS (IoU ``merge_iou``, best score kept).
      The teacher, like every anchor-based detector, misses faces much smaller than its smallest
      anchor (16 px); the upscaled pass recovers many of them.
    """

    face_threshold: float = 0.6
    ignore_threshold: float = 0.2
    min_face_px: float = 6.0
    max_side: int = 2048
    upscale: float = 2.0
    upscale_below_px: float = 24.0
    merge_iou: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 < self.ignore_threshold <= self.face_threshold <= 1.0:
            raise ValueError("TeacherLabelPolicy: need 0 < ignore_threshold <= face_threshold <= 1, got "
                             f"{self.ignore_threshold} and {self.face_threshold}")
        if self.upscale < 1.0 or self.max_side <= 0 or self.min_face_px < 0:
            raise ValueError("TeacherLabelPolicy: upscale must be >= 1, max_side > 0, min_face_px >= 0")


def teacher_labels(
    detector: FaceDetector, image_bgr: np.ndarray, policy: TeacherLabelPolicy
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Teacher detections of one image, split by ``policy`` into faces and ignore regions.

    Args:
        detector: the teacher (e.g. ``load_model("v1", backend="onnxruntime")``).
        image_bgr: ``uint8 [H, W, 3]`` BGR.

    Returns:
        ``(boxes [F, 4], landmarks [F, 5, 2], scores [F], ignore [K, 4])``, float32, original-image
        pixels, boxes ``(x1, y1, x2, y2)``.
    """
    h, w = image_bgr.shape[:2]
    low = policy.ignore_threshold
    long_side = max(h, w)
    size = min(long_side, policy.max_side)
    dets = detector.detect(image_bgr, color="bgr", score_threshold=low, input_size=size)
    rows = _rows(dets)
    scale = size / long_side
    short = np.minimum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]) * scale
    up_size = min(round(long_side * policy.upscale), policy.max_side)
    if len(rows) and short.min() < policy.upscale_below_px and up_size > size:
        up = _rows(detector.detect(image_bgr, color="bgr", score_threshold=low, input_size=up_size))
        up_short = np.minimum(up[:, 2] - up[:, 0], up[:, 3] - up[:, 1])
        rows = _merge(rows, up[up_short < policy.upscale_below_px], policy.merge_iou)
    short = np.minimum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1])
    face = (rows[:, 4] >= policy.face_threshold) & (short >= policy.min_face_px)
    faces = rows[face]
    return (faces[:, :4].copy(), faces[:, 5:15].reshape(-1, 5, 2).copy(), faces[:, 4].copy(),
            rows[~face, :4].copy())


def _rows(dets: Sequence[Detection]) -> np.ndarray:
    """``[D, 15]`` float32: box, score, 10 landmark coordinates."""
    out = np.zeros((len(dets), 15), np.float32)
    for i, d in enumerate(dets):
        out[i, :4] = d.box
        out[i, 4] = d.score
        out[i, 5:] = np.asarray(d.landmarks, np.float32).reshape(10)
    return out


def _merge(a: np.ndarray, b: np.ndarray, iou: float) -> np.ndarray:
    """Rows of ``a`` and ``b`` after NMS on their boxes (best score first)."""
    from featherface._ops.boxes import nms

    rows = np.concatenate([a, b])
    if len(rows) == 0:
        return rows
    keep = nms(torch.from_numpy(rows[:, :4]), torch.from_numpy(rows[:, 4]), iou).numpy()
    return rows[keep]


def label_unlabelled(
    detector: FaceDetector,
    image_paths: Sequence[str | os.PathLike],
    out_jsonl: str | os.PathLike,
    images_root: str | os.PathLike,
    *,
    policy: TeacherLabelPolicy | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Teacher labels for unlabelled photographs, appended to ``out_jsonl`` one image per line.

    Each line is the :func:`featherface.train.data.read_jsonl` format plus ``"ignore"`` (regions the
    teacher is unsure of, see :class:`TeacherLabelPolicy`) and ``"scores"`` (the teacher score of each
    face). Resumable: images already in ``out_jsonl`` are skipped, so an interrupted run continues
    where it stopped. Unreadable images are skipped with a warning and counted.
    """
    policy = policy or TeacherLabelPolicy()
    out = Path(out_jsonl)
    root = Path(images_root)
    done: set[str] = set()
    if out.exists():
        with out.open(encoding="utf-8") as handle:
            done = {json.loads(line)["image"] for line in handle if line.strip()}
    stats = {"images": 0, "faces": 0, "ignore": 0, "unreadable": 0, "skipped_done": 0}
    bar = progress_bar(len(image_paths), unit="img", enabled=progress)
    with out.open("a", encoding="utf-8") as handle:
        for p in image_paths:
            if bar is not None:
                bar.update(1)
            path = Path(p)
            check_not_val(path)
            rel = path.relative_to(root).as_posix()
            if rel in done:
                stats["skipped_done"] += 1
                continue
            try:
                image = load_image_bgr(path)
            except (OSError, ValueError) as exc:
                logger.warning("skipping %s: %s", path, exc)
                stats["unreadable"] += 1
                continue
            boxes, landmarks, scores, ignore = teacher_labels(detector, image, policy)
            record = {
                "image": rel,
                "faces": [{"box": [float(v) for v in b], "landmarks": [[float(x), float(y)] for x, y in lm]}
                          for b, lm in zip(boxes, landmarks)],
                "scores": [round(float(s), 4) for s in scores],
                "ignore": [[float(v) for v in b] for b in ignore],
            }
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            stats["images"] += 1
            stats["faces"] += len(boxes)
            stats["ignore"] += len(ignore)
    if bar is not None:
        bar.close()
    return stats

