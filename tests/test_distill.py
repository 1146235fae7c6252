"""Distillation loss (hand-computed values) and teacher pseudo-labels with the reference V1 teacher."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from featherface._options import DetectorOptions
from featherface._weights.convert import load_reference_v1
from featherface._weights.registry import build_model
from featherface.pipeline import postprocess
from featherface.train.distill import DistillationLoss, DistillConfig, combined_loss
from featherface.train.pseudo import teacher_landmarks_for_boxes
from tests.conftest import shared_file


def _outputs(b: int, n: int, seed: int, requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, n, k, generator=g, requires_grad=requires_grad) for k in (4, 2, 10))


def _softmax(x: list[float]) -> list[float]:
    e = [math.exp(v) for v in x]
    return [v / sum(e) for v in e]


# ------------------------------------------------------------------------------------------------ KL


def test_kl_zero_for_equal_logits_positive_otherwise() -> None:
    crit = DistillationLoss()
    s = _outputs(2, 50, 0)
    conf_t = torch.zeros(2, 50, dtype=torch.long)
    same = crit(s, tuple(t.clone() for t in s), conf_t)
    assert abs(same["kl"].item()) < 1e-7
    assert same["box"].item() == 0.0 and same["ldm"].item() == 0.0  # no positive anchors
    other = crit(s, _outputs(2, 50, 1), conf_t)
    assert other["kl"].item() > 1e-3
    # shifting both logits by a constant per anchor changes nothing (softmax invariance)
    shifted = (s[0], s[1] + 3.0, s[2])
    assert abs(crit(s, shifted, conf_t)["kl"].item()) < 1e-6


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kl_temperature_scaling_hand_computed(temperature: float) -> None:
    student_logits = [[1.0, -0.5], [0.2, 0.3], [-1.0, 2.5]]
    teacher_logits = [[0.0, 2.0], [0.2, 0.3], [0.5, 0.5]]
    expected = 0.0
    for s, t in zip(student_logits, teacher_logits, strict=True):
        ps = _softmax([v / temperature for v in s])
        pt = _softmax([v / temperature for v in t])
        expected += sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True))
    expected = temperature**2 * expected / 3  # mean over the 3 anchors, times T^2

    zeros4, zeros10 = torch.zeros(1, 3, 4), torch.zeros(1, 3, 10)
    student = (zeros4, torch.tensor([student_logits]), zeros10)
    teacher = (zeros4, torch.tensor([teacher_logits]), zeros10)
    cfg = DistillConfig(temperature=temperature, kl_weight=0.5)
    out = DistillationLoss(cfg)(student, teacher, torch.zeros(1, 3, dtype=torch.long))
    assert out["kl"].item() == pytest.approx(expected, rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.5 * expected, rel=1e-5)


def test_box_and_landmark_terms_only_on_positives() -> None:
    b, n = 2, 40
    teacher = _outputs(b, n, 5)
    conf_t = torch.zeros(b, n, dtype=torch.long)
    conf_t[0, [1, 7]] = 1
    conf_t[1, 30] = -1
    pos = conf_t != 0
    loc = torch.where(pos[..., None], teacher[0], teacher[0] + 10.0)  # wrong only on negatives
    ldm = torch.where(pos[..., None], teacher[2], teacher[2] - 10.0)
    out = DistillationLoss()((loc, teacher[1], ldm), teacher, conf_t)
    assert out["box"].item() == 0.0 and out["ldm"].item() == 0.0

    # error of 0.5 on every offset of one positive (the label -1 one): smooth-L1 0.125 per number / 3 positives
    loc2 = loc.clone()
    ldm2 = ldm.clone()
    loc2[1, 30] += 0.5
    ldm2[1, 30] -= 0.5
    cfg = DistillConfig(box_weight=2.0, ldm_weight=3.0, kl_weight=0.0)
    out = DistillationLoss(cfg)((loc2, teacher[1], ldm2), teacher, conf_t)
    assert out["box"].item() == pytest.approx(4 * 0.125 / 3, rel=1e-6)
    assert out["ldm"].item() == pytest.approx(10 * 0.125 / 3, rel=1e-6)
    assert out["loss"].item() == pytest.approx(2.0 * 4 * 0.125 / 3 + 3.0 * 10 * 0.125 / 3, rel=1e-6)


def test_teacher_is_detached_and_combined_total() -> None:
    student = _outputs(1, 30, 0, requires_grad=True)
    teacher = _outputs(1, 30, 1, requires_grad=True)
    conf_t = torch.zeros(1, 30, dtype=torch.long)
    conf_t[0, :4] = 1
    out = DistillationLoss()(student, teacher, conf_t)
    out["loss"].backward()
    assert all(t.grad is None for t in teacher)
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in student)

    task = {"loss": torch.tensor(3.0), "loc": torch.tensor(1.0), "num_pos": torch.tensor(4)}
    distill = {"loss": torch.tensor(2.0), "kl": torch.tensor(2.0)}
    merged = combined_loss(task, distill, DistillConfig(task_weight=0.5))
    assert merged["total"].item() == pytest.approx(0.5 * 3.0 + 2.0)
    assert merged["task_loc"].item() == 1.0 and merged["distill_kl"].item() == 2.0
    with pytest.raises(ValueError, match="temperature"):
        DistillConfig(temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        DistillationLoss()(student, _outputs(1, 29, 1), conf_t)


def test_distillation_steps_move_student_towards_teacher() -> None:
    torch.manual_seed(0)
    teacher = build_model("v2_ultra").eval()
    student = build_model("v2_ultra").train()
    x = torch.randn(2, 3, 64, 64) * 50
    with torch.no_grad():
        t_out = teacher(x)
    conf_t = torch.zeros(t_out[1].shape[:2], dtype=torch.long)
    conf_t[:, ::7] = 1
    crit = DistillationLoss(DistillConfig(temperature=2.0))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        out = crit(student(x), t_out, conf_t)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.8 * losses[0], losses


# ------------------------------------------------------------------- pseudo-labels (hand-built teacher)


class _FixedTeacher(torch.nn.Module):
    """Returns fixed raw outputs for a 64x64 input (168 default priors); no ``config`` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        n = 168
        loc, ldm = torch.zeros(1, n, 4), torch.zeros(1, n, 10)
        logits = torch.tensor([10.0, -10.0]).repeat(1, n, 1)
        # prior 1: centre (4, 4) px, 32 px -> box [-12, -12, 20, 20]; landmark 0 at x = 4 - 7.5 * 3.2 = -20 px
        logits[0, 1] = torch.tensor([-10.0, 10.0])
        ldm[0, 1, 0] = -7.5
        # prior 104: centre (36, 52) px, 16 px, stretched to 32 x 8 px -> [20, 48, 52, 56]
        logits[0, 104] = torch.tensor([-8.0, 8.0])
        loc[0, 104, 2:] = torch.tensor([math.log(2.0) / 0.2, -math.log(2.0) / 0.2])
        # prior 0 pushed left of the image: [-28, -4, -12, 12] -> zero width after clipping
        logits[0, 0] = torch.tensor([-6.0, 6.0])
        loc[0, 0, 0] = -15.0
        self.out = (loc, logits, ldm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        assert x.shape == (1, 3, 64, 64) and not self.training
        return tuple(t + 0.0 * self.dummy for t in self.out)


def test_teacher_landmarks_clip_and_normalise_hand_built() -> None:
    teacher, image = _FixedTeacher(), torch.zeros(1, 3, 64, 64)
    # the teacher's two faces, normalised by (W, H) and clipped to the image: box, landmarks
    a = [0.0, 0.0, 20 / 64, 20 / 64, 0.0, 4 / 64] + [4 / 64] * 8
    b = [20 / 64, 48 / 64, 52 / 64, 56 / 64] + [36 / 64, 52 / 64] * 5
    gt = torch.tensor(
        [[0.0, 0.0, 20 / 64, 20 / 64], [20 / 64, 48 / 64, 52 / 64, 60 / 64], [0.5, 0.0, 0.7, 0.2]]
    )
    landmarks, found = teacher_landmarks_for_boxes(teacher, image, gt)
    assert found.tolist() == [True, True, False]  # IoUs 1 (after clipping), 2/3, 0
    assert torch.allclose(landmarks, torch.tensor([a[4:], b[4:], [0.0] * 10]), atol=1e-5)
    _, found = teacher_landmarks_for_boxes(teacher, image, gt, iou_threshold=0.7)
    assert found.tolist() == [True, False, False]
    empty_l, empty_f = teacher_landmarks_for_boxes(teacher, image, torch.zeros(0, 4))
    assert empty_l.shape == (0, 10) and empty_f.shape == (0,)


# -------------------------------------------------------------------------- pseudo-labels (teacher V1)


@pytest.fixture(scope="module")
def teacher(shared: Path) -> torch.nn.Module:
    return load_reference_v1(shared_file(shared, "data/weights/featherface_v1_reference.safetensors"))


@pytest.fixture(scope="module")
def group_image(shared: Path) -> torch.Tensor:
    img = cv2.imread(str(shared_file(shared, "data/parity/test_image_largest_group_700x405.jpg")))
    assert img is not None and img.shape == (405, 700, 3)
    x = img.astype(np.float32) - np.array([104.0, 117.0, 123.0], dtype=np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()


def _top_detections(
    teacher: torch.nn.Module, image: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's ``k`` best detections, normalised: ``(boxes[k, 4], landmarks[k, 10])``."""
    h, w = image.shape[2:]
    with torch.no_grad():
        loc, logits, ldm = teacher(image)
    det = postprocess((loc, logits, ldm), (h, w), teacher.config.priors, DetectorOptions(score_threshold=0.5))[0]
    assert det.boxes.shape[0] >= k and bool((det.scores[:k] > 0.9).all())
    return det.boxes[:k] / torch.tensor([w, h, w, h]), det.landmarks[:k] / torch.tensor([w, h] * 5)


def test_teacher_landmarks_for_own_detections(teacher: torch.nn.Module, group_image: torch.Tensor) -> None:
    boxes, expected = _top_detections(teacher, group_image, 12)
    far = torch.tensor([[0.0, 0.0, 0.01, 0.01]])  # no face in the top-left corner at that size
    teacher.train()  # must be run in eval mode (BatchNorm running stats) and its mode restored
    landmarks, found = teacher_landmarks_for_boxes(teacher, group_image, torch.cat([boxes, far]))
    assert teacher.training
    teacher.eval()
    assert landmarks.shape == (13, 10) and found.dtype == torch.bool
    assert found[:12].all() and not found[12]
    assert not landmarks[12].any()
    assert torch.allclose(landmarks[:12], expected, atol=1e-5)
    pts = landmarks[:12].reshape(-1, 5, 2)
    inside = (
        (pts[..., 0] >= boxes[:, None, 0])
        & (pts[..., 0] <= boxes[:, None, 2])
        & (pts[..., 1] >= boxes[:, None, 1])
        & (pts[..., 1] <= boxes[:, None, 3])
    )
    assert inside.all()
    # nothing clears a score threshold of 1.0: no box is found
    _, none_found = teacher_landmarks_for_boxes(teacher, group_image, boxes, score_threshold=1.0)
    assert not none_found.any()
