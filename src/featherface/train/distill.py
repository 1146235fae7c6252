"""Knowledge distillation from a V1 teacher to a smaller student.

A working version of what the V2 Ultra code of the FeatherFace repository intended (github
fokouarnaud/FeatherFace, ``layers/distillation_ultra.py`` and ``train_v2_ultra.py``; that script never
trained on real data: it fed random tensors with a constant task loss). Here the student is trained on
the real MultiBox loss (:mod:`featherface.train.loss`) plus

* ``kl``: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` over the 2 classes, summed over
  every anchor of the batch and divided by ``B * N`` (``kl_reduction="anchors"``) or by
  ``max(1, N_pos)`` like the task loss (``"positives"``: the dense teacher signal then weighs as much
  as the ground-truth classification term instead of ~1/500 of it);
* ``box``: smooth-L1 (beta 1) between the student's and the teacher's raw box offsets, summed over
  the positive anchors (:func:`~featherface.train.matcher.positive_mask` of the matcher labels) and divided by ``max(1, N_pos)``;
* ``ldm``: the same for the 10 landmark offsets, on the same positives (label 1 *and* -1: the
  teacher supplies landmarks for faces whose annotation has none).

Both networks must see the same input, so their outputs refer to the same priors. Teacher tensors
are detached. Also here: teacher pseudo-labels (landmarks for annotated boxes, full targets for
unlabelled images) in the ``[M, 15]`` row format of :mod:`featherface.train.matcher`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from featherface._models.config import PriorConfig
from featherface._ops.boxes import box_iou
from featherface._options import DetectorOptions
from featherface.pipeline import RawDetections
from featherface.pipeline import postprocess as decode
from featherface.train.matcher import positive_mask

__all__ = [
    "DistillConfig",
    "DistillationLoss",
    "combined_loss",
    "teacher_landmarks_for_boxes",
    "teacher_pseudo_labels",
]

logger = logging.getLogger(__name__)

HeadOutputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings.

    Attributes:
        temperature: softmax temperature ``T`` of the KL term (> 0); the term is multiplied by
            ``T^2`` so that its gradient scale does not depend on ``T``.
        kl_weight: weight of the class-score KL term in ``DistillationLoss``'s ``loss``.
        kl_reduction: ``"anchors"`` (mean over all anchors of the batch) or ``"positives"`` (sum
            divided by the number of positive anchors, as the task loss).
        box_weight: weight of the smooth-L1 term on box offsets (positive anchors).
        ldm_weight: weight of the smooth-L1 term on landmark offsets (positive anchors).
        task_weight: weight of the ground-truth MultiBox loss in :func:`combined_loss`'s ``total``
            (``total = task_weight * task + distill``).
    """

    temperature: float = 2.0
    kl_weight: float = 1.0
    kl_reduction: str = "anchors"
    box_weight: float = 1.0
    ldm_weight: float = 1.0
    task_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"DistillConfig: temperature must be > 0, got {self.temperature}")
        if self.kl_reduction not in ("anchors", "positives"):
            raise ValueError(f"DistillConfig: kl_reduction must be 'anchors' or 'positives', got {self.kl_reduction!r}")
        for name in ("kl_weight", "box_weight", "ldm_weight", "task_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"DistillConfig: {name} must be >= 0, got {getattr(self, name)}")


class DistillationLoss(nn.Module):
    """Student-teacher loss on the raw head outputs (see the module docstring for the terms)."""

    def __init__(self, cfg: DistillConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or DistillConfig()

    def forward(
        self, student: HeadOutputs, teacher: HeadOutputs, conf_t: torch.Tensor,
        pos_normalizer: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the distillation terms.

        Args:
            student: ``(loc[B, N, 4], logits[B, N, 2], landmarks[B, N, 10])`` raw student outputs.
            teacher: the same for the teacher on the same input (detached here).
            conf_t: ``[B, N]`` matched labels in ``{-1, 0, 1}``; non-zero marks a positive anchor.
            pos_normalizer: optional denominator of ``box`` and ``ldm`` replacing ``max(1, N_pos)``
                (data-parallel training: the global count divided by the world size).

        Returns:
            float32 scalars ``kl``, ``box``, ``ldm`` and ``loss`` (their weighted sum).
        """
        s_loc, s_logits, s_ldm = (t.float() for t in student)
        t_loc, t_logits, t_ldm = (t.detach().float() for t in teacher)
        if s_logits.shape != t_logits.shape or s_loc.shape != t_loc.shape or s_ldm.shape != t_ldm.shape:
            raise ValueError(
                "DistillationLoss: student and teacher outputs differ in shape: "
                f"{[tuple(t.shape) for t in student]} vs {[tuple(t.shape) for t in teacher]}"
            )
        if conf_t.shape != s_logits.shape[:2]:
            raise ValueError(
                f"DistillationLoss: conf_t must be {tuple(s_logits.shape[:2])}, got {tuple(conf_t.shape)}"
            )
        cfg = self.cfg
        temp = float(cfg.temperature)
        num_anchors = s_logits.shape[0] * s_logits.shape[1]

        log_p_s = F.log_softmax(s_logits / temp, dim=-1)
        log_p_t = F.log_softmax(t_logits / temp, dim=-1)
        pos = positive_mask(conf_t.to(s_loc.device))
        denom = pos.sum().clamp(min=1).float()
        if pos_normalizer is not None:
            denom = torch.as_tensor(pos_normalizer, dtype=torch.float32, device=s_loc.device)
        kl_denom = denom if cfg.kl_reduction == "positives" else max(1, num_anchors)
        kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True) / kl_denom
        kl = kl * temp**2
        box = F.smooth_l1_loss(s_loc[pos], t_loc[pos], reduction="sum", beta=1.0) / denom
        ldm = F.smooth_l1_loss(s_ldm[pos], t_ldm[pos], reduction="sum", beta=1.0) / denom

        loss = cfg.kl_weight * kl + cfg.box_weight * box + cfg.ldm_weight * ldm
        return {"loss": loss, "kl": kl, "box": box, "ldm": ldm}


def combined_loss(
    task: dict[str, torch.Tensor], distill: dict[str, torch.Tensor], cfg: DistillConfig
) -> dict[str, torch.Tensor]:
    """Merge the task (MultiBox) and distillation dicts and add ``total``.

    Returns every entry of ``task`` prefixed ``task_`` and of ``distill`` prefixed ``distill_``, plus
    ``total = cfg.task_weight * task["loss"] + distill["loss"]`` (the distillation weights are
    already inside ``distill["loss"]``).
    """
    out = {f"task_{k}": v for k, v in task.items()}
    out.update({f"distill_{k}": v for k, v in distill.items()})
    out["total"] = cfg.task_weight * task["loss"] + distill["loss"]
    return out


# --------------------------------------------------------------------------------------- pseudo-labels


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode (BatchNorm running statistics), restoring its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


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
    with _eval_mode(teacher):
        loc, logits, ldm = teacher(x)
    return decode((loc, logits, ldm), (h, w), cfg, options)[0]


def _normalise_clipped(det: RawDetections, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel detections -> ``(boxes[K, 4], landmarks[K, 10])`` normalised by ``(W, H)``, clamped to ``[0, 1]``."""
    scale = torch.tensor([w, h], dtype=det.boxes.dtype, device=det.boxes.device)
    boxes = (det.boxes.reshape(-1, 2, 2) / scale).clamp(0.0, 1.0).reshape(-1, 4)
    ldm = (det.landmarks.reshape(-1, 5, 2) / scale).clamp(0.0, 1.0).reshape(-1, 10)
    return boxes, ldm


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
    det_boxes, det_ldm = _normalise_clipped(det, h, w)
    iou = box_iou(boxes.to(det_boxes), det_boxes)  # [M, K]
    best_iou, best = iou.max(dim=1)
    ok = best_iou >= iou_threshold
    found = ok.to(boxes.device)
    landmarks = torch.where(ok[:, None], det_ldm[best], torch.zeros_like(det_ldm[best]))
    logger.debug(
        "teacher landmarks: %d of %d boxes matched (%d detections)", int(ok.sum()), m, len(det_boxes)
    )
    return landmarks.to(device=boxes.device, dtype=out_dtype), found


@torch.no_grad()
def teacher_pseudo_labels(
    teacher: nn.Module,
    image: torch.Tensor,
    *,
    score_threshold: float = 0.6,
    nms_iou: float = 0.4,
    min_size_px: float = 0.0,
    prior_cfg: PriorConfig | None = None,
) -> torch.Tensor:
    """Training targets for an unlabelled image from the teacher's detections.

    Args:
        teacher: network mapping ``x[1, 3, H, W]`` to raw ``(loc, logits, landmarks)``; run in eval mode.
        image: ``[1, 3, H, W]`` BGR minus the mean.
        score_threshold: keep detections whose face score is above this.
        nms_iou: NMS overlap.
        min_size_px: drop detections whose clipped width or height is below this (input pixels).
        prior_cfg: anchor layout (default: ``teacher.config.priors`` or :class:`PriorConfig`).

    Returns:
        ``float32 [K, 15]`` rows on ``image``' device, descending score: box ``(x1, y1, x2, y2)``
        clipped to the image and normalised by ``(W, H)``, landmarks ``(x0, y0, ..., x4, y4)`` clamped
        to ``[0, 1]``, label ``1.0``. Boxes of zero area after clipping are dropped.
    """
    h, w = int(image.shape[2]), int(image.shape[3])
    det = _detect(
        teacher,
        image,
        DetectorOptions(score_threshold=score_threshold, iou_threshold=nms_iou),
        prior_cfg,
    )
    boxes, ldm = _normalise_clipped(det, h, w)
    boxes, ldm = boxes.float(), ldm.float()
    bw, bh = (boxes[:, 2] - boxes[:, 0]) * w, (boxes[:, 3] - boxes[:, 1]) * h
    keep = (bw > 0) & (bh > 0) & (bw >= min_size_px) & (bh >= min_size_px)
    boxes, ldm = boxes[keep], ldm[keep]
    label = torch.ones(boxes.shape[0], 1, dtype=torch.float32, device=boxes.device)
    rows = torch.cat([boxes, ldm, label], dim=1)
    logger.debug("teacher pseudo-labels: %d faces (of %d detections)", rows.shape[0], det.boxes.shape[0])
    return rows.to(image.device)
