"""MultiBox loss with landmarks and 7:1 hard negative mining.

It follows ``MultiBoxLoss`` in ``layers/modules/multibox_loss.py`` of the RetinaFace PyTorch
implementation (github biubug6/Pytorch_Retinaface), as the FeatherFace authors' ``train.py`` uses it
(2 classes, positive IoU 0.35, 7 negatives per positive, variances (0.1, 0.2)) and combines its terms
(``loc_weight`` 2.0 from ``cfg_mnet``); the formulas are below. ``min_negatives`` and ignored priors are
this project's additions.

Network outputs are raw ``(loc[B, N, 4], logits[B, N, 2], landmarks[B, N, 10])`` offsets and logits
for the ``N`` priors of the input size; targets are per-image ``[M, 15]`` rows (see
:mod:`featherface.train.matcher`). With ``N_pos`` the number of priors labelled 1 or -1 and
``N_ldm`` those labelled 1 (faces with landmarks), over the whole batch:

* ``loc = sum_{label != 0} smoothL1(loc, loc_t) / max(1, N_pos)`` (beta 1, summed over the 4 offsets);
* ``ldm = sum_{label > 0} smoothL1(ldm, ldm_t) / max(1, N_ldm)``;
* ``cls = sum_{positives + mined negatives} CE / max(1, N_pos)``, where every non-zero label counts as
  "face" and, per image, the ``min(neg_pos_ratio * num_pos_i, N - 1)`` background priors with the
  largest CE are mined (positives' CE is zeroed before ranking), but at least ``min_negatives``
  (0 in the reference, where an image with no positive contributes no negative and a detector never
  learns that a face-free frame has no face);
* ``loss = w_loc * loc + w_cls * cls + w_ldm * ldm`` (2, 1, 1 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from featherface._models.config import PriorConfig
from featherface.train.matcher import IGNORE, match_batch, positive_mask

__all__ = ["LossWeights", "MultiBoxLoss", "MatchedTargets", "cross_entropy_per_prior", "hard_negative_mask"]

#: ``(loc_t[B, N, 4], conf_t[B, N] int64 in {-1, 0, 1}, ldm_t[B, N, 10])`` from :func:`match_batch`.
MatchedTargets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three task terms in the total loss (reference: ``loc_weight`` 2.0, others 1.0)."""

    loc: float = 2.0
    cls: float = 1.0
    ldm: float = 1.0


def cross_entropy_per_prior(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``CE = logsumexp(logits) - logits[label]`` per prior.

    Args:
        logits: ``[..., C]`` class logits. labels: ``[...]`` int64 class indices in ``[0, C)``.

    Returns:
        ``[...]`` non-negative losses (numerically stable through :func:`torch.logsumexp`).
    """
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return torch.logsumexp(logits, dim=-1) - picked


def hard_negative_mask(
    ce: torch.Tensor, positive: torch.Tensor, neg_pos_ratio: int, min_negatives: int = 0,
    ignore: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image hard negative mining.

    Args:
        ce: ``[B, N]`` per-prior classification loss (no gradient needed).
        positive: ``[B, N]`` bool, priors labelled face.
        neg_pos_ratio: negatives kept per positive.
        min_negatives: at least this many negatives per image (also for images without positives).
        ignore: ``[B, N]`` bool, priors in ignore regions: never mined (their loss is zeroed too).

    Returns:
        ``[B, N]`` bool: for image ``i`` the ``min(max(neg_pos_ratio * num_pos_i, min_negatives), N - 1)`` priors of highest
        loss after zeroing the positives' loss (ties broken by prior index). It can include a
        positive only when fewer background priors than that have a non-zero loss; callers take
        ``positive | mask``.
    """
    ce = ce.detach().masked_fill(positive if ignore is None else positive | ignore, 0.0)
    n = ce.shape[1]
    num_neg = (neg_pos_ratio * positive.sum(dim=1, keepdim=True)).clamp(min=min_negatives, max=n - 1)  # [B, 1]
    order = torch.sort(ce, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=ce.device).expand_as(order))
    mined = rank < num_neg
    return mined if ignore is None else mined & ~ignore


class MultiBoxLoss(nn.Module):
    """MultiBox loss with landmarks, as in the authors' training code.

    Args:
        prior_cfg: anchor layout; only ``variances`` is used (priors are passed to :meth:`forward`).
        neg_pos_ratio: hard negatives per positive (7).
        pos_iou: matching threshold below which a prior is background (0.35).
        weights: weights of the three terms in ``loss``.
        min_negatives: hard negatives mined per image at least (0: the reference).
    """

    def __init__(
        self,
        prior_cfg: PriorConfig | None = None,
        neg_pos_ratio: int = 7,
        pos_iou: float = 0.35,
        weights: LossWeights = LossWeights(),
        min_negatives: int = 0,
    ) -> None:
        super().__init__()
        if neg_pos_ratio < 0:
            raise ValueError(f"MultiBoxLoss: neg_pos_ratio must be >= 0, got {neg_pos_ratio}")
        if not 0.0 < pos_iou <= 1.0:
            raise ValueError(f"MultiBoxLoss: pos_iou must be in (0, 1], got {pos_iou}")
        if min_negatives < 0:
            raise ValueError(f"MultiBoxLoss: min_negatives must be >= 0, got {min_negatives}")
        self.min_negatives = int(min_negatives)
        self.prior_cfg = prior_cfg or PriorConfig()
        self.variances = tuple(float(v) for v in self.prior_cfg.variances)
        self.neg_pos_ratio = int(neg_pos_ratio)
        self.pos_iou = float(pos_iou)
        self.weights = weights

    @torch.no_grad()
    def match(self, targets: Sequence[torch.Tensor], priors: torch.Tensor) -> MatchedTargets:
        """Match a batch of ``[M_i, 15]`` targets to ``priors[N, 4]``.

        Returns ``(loc_t[B, N, 4], conf_t[B, N] int64, ldm_t[B, N, 10])`` on ``priors``' device; reuse
        it for :meth:`forward` (``matched=``) and for distillation (``conf_t``).
        """
        return match_batch(targets, priors, self.variances, pos_iou=self.pos_iou)  # type: ignore[arg-type]

    def forward(
        self,
        outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        targets: Sequence[torch.Tensor] | None,
        priors: torch.Tensor,
        *,
        matched: MatchedTargets | None = None,
        normalizers: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the loss.

        Args:
            outputs: raw ``(loc[B, N, 4], logits[B, N, 2], landmarks[B, N, 10])``.
            targets: ``B`` tensors ``[M_i, 15]`` (normalised boxes, landmarks, label); ignored when
                ``matched`` is given.
            priors: ``[N, 4]`` ``(cx, cy, w, h)`` for the input size of ``outputs``.
            matched: optional precomputed :meth:`match` result, to avoid matching twice.
            normalizers: optional ``(pos, ldm)`` denominators replacing ``max(1, N_pos)`` and
                ``max(1, N_ldm)`` of this batch. Data-parallel training passes the global counts
                divided by the world size, so that the mean of the per-rank losses (what DDP's
                gradient averaging optimises) is the loss of the whole global batch.

        Returns:
            ``{"loss", "loc", "cls", "ldm"}`` float32 scalars (``loss`` is the weighted total) and
            ``"num_pos"`` (int64 scalar, priors with a non-zero label over the batch).
        """
        loc, logits, ldm = outputs
        if loc.ndim != 3 or loc.shape[-1] != 4 or logits.shape[:2] != loc.shape[:2] or logits.shape[-1] != 2:
            raise ValueError(
                f"MultiBoxLoss: expected loc [B, N, 4], logits [B, N, 2], landmarks [B, N, 10]; got "
                f"{tuple(loc.shape)}, {tuple(logits.shape)}, {tuple(ldm.shape)}"
            )
        if ldm.shape[:2] != loc.shape[:2] or ldm.shape[-1] != 10:
            raise ValueError(f"MultiBoxLoss: landmarks must be [B, N, 10], got {tuple(ldm.shape)}")
        b, n = loc.shape[:2]
        if priors.shape != (n, 4):
            raise ValueError(f"MultiBoxLoss: outputs have {n} priors but priors is {tuple(priors.shape)}")
        if matched is None:
            if targets is None or len(targets) != b:
                got = None if targets is None else len(targets)
                raise ValueError(f"MultiBoxLoss: need {b} target tensors, got {got}")
            matched = self.match(targets, priors.to(device=loc.device, dtype=torch.float32))
        loc_t, conf_t, ldm_t = (t.to(loc.device) for t in matched)
        if conf_t.shape != (b, n):
            raise ValueError(f"MultiBoxLoss: matched conf_t must be [{b}, {n}], got {tuple(conf_t.shape)}")

        # compute in float32 even under autocast
        loc, logits, ldm = loc.float(), logits.float(), ldm.float()
        loc_t, ldm_t = loc_t.float(), ldm_t.float()

        pos = positive_mask(conf_t)
        pos_ldm = conf_t > 0
        num_pos = pos.sum()
        num_ldm = pos_ldm.sum()
        denom = num_pos.clamp(min=1).float()
        denom_ldm = num_ldm.clamp(min=1).float()
        if normalizers is not None:
            denom, denom_ldm = (torch.as_tensor(v, dtype=torch.float32, device=loc.device) for v in normalizers)

        loss_loc = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum", beta=1.0) / denom
        loss_ldm = (
            F.smooth_l1_loss(ldm[pos_ldm], ldm_t[pos_ldm], reduction="sum", beta=1.0)
            / denom_ldm
        )

        labels = pos.long()
        ce = cross_entropy_per_prior(logits, labels)  # [B, N]
        neg = hard_negative_mask(ce, pos, self.neg_pos_ratio, self.min_negatives, ignore=conf_t == IGNORE)
        selected = pos | neg
        loss_cls = ce[selected].sum() / denom

        w = self.weights
        total = w.loc * loss_loc + w.cls * loss_cls + w.ldm * loss_ldm
        return {"loss": total, "loc": loss_loc, "cls": loss_cls, "ldm": loss_ldm, "num_pos": num_pos}
