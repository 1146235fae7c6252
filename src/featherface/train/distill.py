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
are detached. (Teacher pseudo-labels are in :mod:`featherface.train.pseudo`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from featherface.detection import RawOutputs
from featherface.train.matcher import positive_mask

__all__ = ["DistillConfig", "DistillationLoss", "combined_loss"]



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
        self, student: RawOutputs, teacher: RawOutputs, conf_t: torch.Tensor,
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
