"""Ground-truth to prior matching, vectorised.

The rules are those of ``match`` in ``utils/box_utils.py`` of the RetinaFace PyTorch implementation
(github biubug6/Pytorch_Retinaface), which the FeatherFace authors' training code uses (the positive IoU
0.35 is what their MultiBox loss passes to it); they are listed below. Ignore regions are this project's
addition.

Conventions:

* ``targets[M, 15]`` per image, everything normalised to ``[0, 1]`` by the network input size:
  columns 0-3 box ``(x1, y1, x2, y2)``; 4-13 landmarks ``(x0, y0, ..., x4, y4)`` (zeros when absent);
  14 label, ``1.0`` for a face with landmarks, ``-1.0`` for a face without, ``0.0`` for an *ignore
  region* (a face the pseudo-labelling teacher was unsure of). ``M`` may be 0.
* ``priors[N, 4]`` in ``(cx, cy, w, h)`` form (:func:`featherface._ops.priors.generate_priors`).
* Outputs: ``loc_t[N, 4]`` encoded box offsets, ``conf_t[N]`` int64 in ``{-2, -1, 0, 1}`` (0 = background,
  :data:`IGNORE` = -2: neither face nor background; :func:`positive_mask` gives the faces),
  ``ldm_t[N, 10]`` encoded landmark offsets. Offsets of background priors are meaningless (they
  are encoded against whichever GT the prior overlaps most, or zero when the image has no
  usable GT) and are never read by the loss.

Rules, as in the reference ``match``:

1. IoU between every GT and every prior (priors in corner form), continuous convention (no "+1").
2. Each GT's best prior. A GT whose best IoU is < ``force_iou`` (0.2) is not force-matched; if no
   GT reaches ``force_iou``, the whole image is background.
3. Each prior's best GT and that IoU.
4. The best priors of the valid GTs get IoU 2 (always positive). Then *every* GT (valid or not)
   makes its best prior point to it; when several GTs share a best prior, the last GT wins. A GT
   that failed step 2 therefore re-targets its best prior but does not make it positive: that
   prior is positive only if its own best IoU (with any GT) is >= ``pos_iou``.
5. A prior takes the label of its matched GT, or 0 when its IoU < ``pos_iou`` (0.35).

Ignore regions (label 0) take no part in steps 1-5; afterwards a background prior whose IoU with an
ignore region is >= ``ignore_iou`` (0.3) gets :data:`IGNORE`: the loss neither mines it as a negative nor
trains it as a face (the "don't care" regions of pseudo-labelled detection training, as in the
ignore flags of Caltech/CityPersons-style pedestrian benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from featherface._ops.box_coder import Variances, encode_boxes, encode_landmarks
from featherface._ops.boxes import box_iou

__all__ = ["IGNORE", "TARGET_COLUMNS", "match", "match_batch", "positive_mask", "priors_to_corners"]

#: Number of columns of one target row: 4 box + 10 landmarks + 1 label.
TARGET_COLUMNS = 15

#: ``conf_t`` value of a prior that overlaps an ignore region: neither a face nor a mined negative.
IGNORE = -2


def positive_mask(conf_t: torch.Tensor) -> torch.Tensor:
    """``conf_t`` (any shape, from :func:`match`) -> bool mask of the priors matched to a face."""
    return (conf_t == 1) | (conf_t == -1)


def priors_to_corners(priors: torch.Tensor) -> torch.Tensor:
    """``priors[N, 4]`` ``(cx, cy, w, h)`` -> ``[N, 4]`` ``(x1, y1, x2, y2)``."""
    half = priors[:, 2:] / 2
    return torch.cat([priors[:, :2] - half, priors[:, :2] + half], dim=1)


def _check_targets(targets: torch.Tensor) -> None:
    if targets.ndim != 2 or targets.shape[1] != TARGET_COLUMNS:
        raise ValueError(f"match: targets must have shape [M, {TARGET_COLUMNS}], got {tuple(targets.shape)}")


def match(
    targets: torch.Tensor,
    priors: torch.Tensor,
    variances: Variances,
    *,
    pos_iou: float = 0.35,
    force_iou: float = 0.2,
    ignore_iou: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Match the ground truth of one image to the priors.

    Args:
        targets: ``[M, 15]`` rows (box x1y1x2y2, 10 landmark coordinates, label), normalised.
        priors: ``[N, 4]`` ``(cx, cy, w, h)``, normalised.
        variances: box-coding variances, e.g. ``PriorConfig().variances``.
        pos_iou: a prior whose IoU with its matched GT is below this is background.
        force_iou: a GT whose best prior IoU is below this is not force-matched; if no GT reaches
            it, every prior is background.
        ignore_iou: a background prior with at least this IoU with an ignore row gets :data:`IGNORE`.

    Returns:
        ``(loc_t[N, 4], conf_t[N] int64 in {-2, -1, 0, 1}, ldm_t[N, 10])`` on ``priors``' device, in
        ``priors``' floating dtype. Offsets are zero when the image is entirely background.
    """
    _check_targets(targets)
    ignore_rows = targets[:, 14] == 0
    if bool(ignore_rows.any()):
        loc_t, conf_t, ldm_t = match(targets[~ignore_rows], priors, variances, pos_iou=pos_iou, force_iou=force_iou)
        ignore_boxes = targets[ignore_rows, :4].to(device=priors.device, dtype=priors.dtype)
        near = box_iou(ignore_boxes, priors_to_corners(priors)).amax(dim=0) >= ignore_iou
        conf_t = torch.where(near & (conf_t == 0), torch.full_like(conf_t, IGNORE), conf_t)
        return loc_t, conf_t, ldm_t
    if priors.ndim != 2 or priors.shape[1] != 4:
        raise ValueError(f"match: priors must have shape [N, 4], got {tuple(priors.shape)}")
    n = priors.shape[0]
    device, dtype = priors.device, priors.dtype
    targets = targets.to(device=device, dtype=dtype)
    m = targets.shape[0]

    if m == 0:
        return _background(n, device, dtype)

    boxes = targets[:, :4]
    overlaps = box_iou(boxes, priors_to_corners(priors))  # [M, N]

    # step 2: each GT's best prior; validity for force-matching
    best_prior_iou, best_prior_idx = overlaps.max(dim=1)  # [M]
    valid_gt = best_prior_iou >= force_iou
    if not bool(valid_gt.any()):
        return _background(n, device, dtype)

    # step 3: each prior's best GT
    best_truth_iou, best_truth_idx = overlaps.max(dim=0)  # [N]

    # step 4a: best priors of valid GTs are always positive
    best_truth_iou = best_truth_iou.index_fill(0, best_prior_idx[valid_gt], 2.0)
    # step 4b: every GT claims its best prior; the highest GT index wins a shared prior, exactly
    # like the reference's sequential loop, but deterministic on every device
    gt_ids = torch.arange(m, device=device)
    claimed = torch.full((n,), -1, dtype=torch.long, device=device)
    claimed.scatter_reduce_(0, best_prior_idx, gt_ids, reduce="amax", include_self=True)
    best_truth_idx = torch.where(claimed >= 0, claimed, best_truth_idx)

    # step 5: labels and encoded targets
    matched = targets[best_truth_idx]  # [N, 15]
    conf_t = matched[:, 14].round().to(torch.long)
    conf_t = torch.where(best_truth_iou < pos_iou, torch.zeros_like(conf_t), conf_t)
    loc_t = encode_boxes(matched[:, :4], priors, variances)
    ldm_t = encode_landmarks(matched[:, 4:14], priors, variances)
    return loc_t, conf_t, ldm_t


def _background(
    n: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.zeros(n, 4, device=device, dtype=dtype),
        torch.zeros(n, dtype=torch.long, device=device),
        torch.zeros(n, 10, device=device, dtype=dtype),
    )


def match_batch(
    targets: Sequence[torch.Tensor],
    priors: torch.Tensor,
    variances: Variances,
    **kwargs: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`match` for each image of a batch.

    Args:
        targets: ``B`` tensors ``[M_i, 15]`` (``M_i`` may be 0).
        priors: ``[N, 4]`` shared by all images (same input size).
        variances: box-coding variances.
        **kwargs: ``pos_iou`` / ``force_iou`` forwarded to :func:`match`.

    Returns:
        ``(loc_t[B, N, 4], conf_t[B, N] int64, ldm_t[B, N, 10])``.
    """
    if len(targets) == 0:
        raise ValueError("match_batch: empty batch")
    per_image = [match(t, priors, variances, **kwargs) for t in targets]
    loc_t, conf_t, ldm_t = (torch.stack(parts) for parts in zip(*per_image, strict=True))
    return loc_t, conf_t, ldm_t
