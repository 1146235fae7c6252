"""Training from the teacher's frozen backbone (issue 11): split forward, class prior, shared backbone
pass, the ONNX Runtime teacher, hard negatives on face-free frames, and a short real-image run whose
classifier must leave the constant it starts at.

Needs ``FEATHERFACE_SHARED`` for the reference V1 teacher and the WIDER FACE train images.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from featherface._weights.registry import build_model
from featherface.train.augment import TrainTransform, face_free_frame
from featherface.train.config import DataSource, TrainConfig
from featherface.train.diagnostics import anchor_face_probabilities, probability_spread
from featherface.train.distill import DistillationLoss, DistillConfig
from featherface.train.loop import Trainer
from featherface.train.loss import MultiBoxLoss, hard_negative_mask
from tests.conftest import shared_file

REFERENCE = "data/weights/featherface_v1_reference.safetensors"
IMAGES = "data/widerface/train_part1/images"
LABELS = "data/widerface/labels/wider_face_train_bbx_gt_available.txt"
ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "images" / "astronaut.png"


@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
def test_forward_is_backbone_then_head(name: str) -> None:
    torch.manual_seed(0)
    net = build_model(name).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        full = net(x)
        split = net.forward_head(net.backbone(x))
    for a, b in zip(full, split):
        torch.testing.assert_close(a, b)


def test_class_prior_sets_every_anchor() -> None:
    net = build_model("v2_ultra")
    img = cv2.imread(str(ASTRONAUT))
    before = anchor_face_probabilities(net, img)
    assert before.min() > 0.45 and before.max() < 0.55  # zero biases: about 0.5 everywhere
    for m in net.modules():
        if hasattr(m, "init_class_prior"):
            m.init_class_prior(0.01)
    after = anchor_face_probabilities(net, img)
    assert after.max() < 0.05 and abs(float(after.median()) - 0.01) < 0.01
    with pytest.raises(ValueError, match="face_probability"):
        next(m for m in net.modules() if hasattr(m, "init_class_prior")).init_class_prior(1.0)


def test_min_negatives_mines_faceless_images() -> None:
    ce = torch.rand(2, 50)
    pos = torch.zeros(2, 50, dtype=torch.bool)
    pos[0, :2] = True  # image 0: 2 positives; image 1: none
    ref = hard_negative_mask(ce, pos, 7)
    assert ref[1].sum() == 0  # the reference: a face-free image teaches nothing
    mask = hard_negative_mask(ce, pos, 7, min_negatives=16)
    assert mask[0].sum() == 16 and mask[1].sum() == 16
    top = torch.topk(ce[1], 16).indices
    assert mask[1, top].all()
    logits = torch.zeros(2, 50, 2)
    out = MultiBoxLoss(min_negatives=16)(
        (torch.zeros(2, 50, 4), logits, torch.zeros(2, 50, 10)), None, torch.rand(50, 4),
        matched=(torch.zeros(2, 50, 4), torch.zeros(2, 50, dtype=torch.long), torch.zeros(2, 50, 10)),
    )
    assert float(out["cls"]) > 0  # no positive anywhere, yet the classifier gets a gradient
    with pytest.raises(ValueError, match="min_negatives"):
        MultiBoxLoss(min_negatives=-1)


def test_face_free_frames() -> None:
    rng = np.random.default_rng(0)
    frames = [face_free_frame(64, rng) for _ in range(40)]
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert len({f.tobytes() for f in frames}) > 30
    np.testing.assert_array_equal(face_free_frame(32, np.random.default_rng(5)), face_free_frame(32, np.random.default_rng(5)))
    t = TrainTransform(image_size=64, negative_frames=0.5)
    img = np.full((100, 120, 3), 90, np.uint8)
    boxes = np.array([[10, 10, 60, 70]], np.float32)
    ldm, has = np.zeros((1, 10), np.float32), np.zeros(1, bool)
    empty = sum(t(img, boxes, ldm, has, np.random.default_rng(i))[1].shape[0] == 0 for i in range(200))
    assert 70 < empty < 130  # about half the items are face-free frames with no target
    assert boxes.tolist() == [[10, 10, 60, 70]]  # caller's data untouched
    with pytest.raises(ValueError, match="negative_frames"):
        TrainTransform(negative_frames=1.0)


def test_kl_reduction_positives() -> None:
    torch.manual_seed(0)
    s = (torch.randn(2, 30, 4), torch.randn(2, 30, 2), torch.randn(2, 30, 10))
    t = (torch.randn(2, 30, 4), torch.randn(2, 30, 2), torch.randn(2, 30, 10))
    conf = torch.zeros(2, 30, dtype=torch.long)
    conf[0, :3] = 1
    mean = DistillationLoss(DistillConfig(temperature=1.0))(s, t, conf)["kl"]
    per_pos = DistillationLoss(DistillConfig(temperature=1.0, kl_reduction="positives"))(s, t, conf)["kl"]
    torch.testing.assert_close(per_pos, mean * 60 / 3)
    with pytest.raises(ValueError, match="kl_reduction"):
        DistillConfig(kl_reduction="batch")


# --------------------------------------------------------------------------- with the reference teacher


@pytest.fixture(scope="module")
def small_set(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bbx_gt file with 8 train_part1 images that have 1-4 faces of at least 48 px."""
    from featherface.train.data import read_widerface_bbx_gt

    samples = read_widerface_bbx_gt(shared_file(shared, LABELS), shared_file(shared, IMAGES), require_images=True)
    chosen = [s for s in samples if 1 <= len(s.boxes) <= 4 and ((s.boxes[:, 2:] - s.boxes[:, :2]).min(axis=1) >= 48).all()][:8]
    assert len(chosen) == 8
    root = shared / IMAGES
    lines = []
    for s in chosen:
        lines += [str(Path(s.image_path).relative_to(root)), str(len(s.boxes))]
        lines += [f"{int(x1)} {int(y1)} {int(x2 - x1)} {int(y2 - y1)} 0 0 0 0 0 0" for x1, y1, x2, y2 in s.boxes]
    out = tmp_path_factory.mktemp("small") / "bbx_gt.txt"
    out.write_text("\n".join(lines) + "\n")
    return out


def _config(shared: Path, labels: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(
        model="v2_ultra", train_data=(DataSource("widerface", str(labels), str(shared / IMAGES)),),
        out_dir=str(out), image_size=320, batch_size=4, epochs=1, workers=0, seed=0, threads=2,
        teacher=str(shared_file(shared, REFERENCE)), backbone_from_teacher=True, freeze_backbone=True,
        log_every=1, progress=False, save_every_epochs=0,
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="backbone_from_teacher needs a teacher"):
        TrainConfig(backbone_from_teacher=True)
    with pytest.raises(ValueError, match="teacher_runtime"):
        TrainConfig(teacher_runtime="tensorrt")
    with pytest.raises(ValueError, match="cls_prior"):
        TrainConfig(cls_prior=0.0)


def test_frozen_teacher_backbone_is_shared_and_stays_frozen(shared: Path, small_set: Path, tmp_path: Path) -> None:
    tr = Trainer(_config(shared, small_set, tmp_path, max_steps=2, cls_prior=0.01))
    assert tr.shared_backbone
    teacher_bb = {k: v.clone() for k, v in tr.teacher.backbone.state_dict().items()}  # type: ignore[union-attr]
    for k, v in tr.model.backbone.state_dict().items():
        torch.testing.assert_close(v, teacher_bb[k], rtol=0, atol=0)
    head_before = {k: v.clone() for k, v in tr.model.state_dict().items() if not k.startswith("backbone.")}
    assert all(not p.requires_grad for p in tr.model.backbone.parameters())
    tr.fit()
    for k, v in tr.model.backbone.state_dict().items():  # weights and BatchNorm statistics untouched
        torch.testing.assert_close(v, teacher_bb[k], rtol=0, atol=0)
    changed = [k for k, v in tr.model.state_dict().items() if k in head_before and not torch.equal(v, head_before[k])]
    assert len(changed) > 10  # the neck and heads did train


def test_onnxruntime_teacher_matches_torch(shared: Path) -> None:
    pytest.importorskip("onnxruntime")
    from featherface.train.checkpoint import load_teacher
    from featherface.train.teacher import OnnxRuntimeTeacher

    teacher = load_teacher(shared_file(shared, REFERENCE), torch.device("cpu"))
    x = torch.from_numpy(cv2.resize(cv2.imread(str(ASTRONAUT)), (160, 128)).astype(np.float32) - np.float32([104, 117, 123]))
    x = x.permute(2, 0, 1)[None].contiguous()
    feats, outs = OnnxRuntimeTeacher(teacher, num_threads=1)(x)
    with torch.no_grad():
        ref_feats = teacher.backbone(x)
        ref_outs = teacher.forward_head(ref_feats)
    for a, b in zip(feats, ref_feats):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    for a, b in zip(outs, ref_outs):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=2e-3)


# Measured with these settings (8 images at 320 px, batch 4, lr 5e-3 one-cycle over 120 steps with
# pct_start 0.2, seed 0): after 10 steps the astronaut's face was at 0.91 and the median anchor at
# 0.016, after 20 steps 0.92 and 0.021, after 60 steps 0.98 and 0.003. Without the class prior the
# median anchor was still 0.50 after 10 steps (docs/training.md). The test runs the first 20 steps of
# that schedule.
SCHEDULE_STEPS = 120
STEPS_TO_LEAVE_CONSTANT = 20


@pytest.mark.slow
def test_short_run_leaves_the_constant_classifier(shared: Path, small_set: Path, tmp_path: Path) -> None:
    """From the teacher's frozen backbone with the 0.01 class prior, the first steps of a short run on
    8 real images must separate the astronaut's face from the background (a constant classifier has
    spread ~0)."""
    from torch.utils.data import DataLoader

    from featherface.train.data import detection_collate
    from featherface.train.sampler import EpochBatchSampler

    cfg = _config(shared, small_set, tmp_path, max_steps=SCHEDULE_STEPS, epochs=100, lr=5e-3,
                  pct_start=0.2, cls_prior=0.01, min_negatives=16,
                  distill=DistillConfig(temperature=1.0, kl_reduction="positives"))
    tr = Trainer(cfg)
    img = cv2.imread(str(ASTRONAUT))
    start = probability_spread(anchor_face_probabilities(tr.model, img))
    # starts at the prior: median 0.0099, at most 0.12 on any anchor (measured)
    assert abs(start.median - 0.01) < 0.005 and start.max < 0.2, start
    epoch = 0
    while tr.step < STEPS_TO_LEAVE_CONSTANT:
        tr.dataset.set_epoch(epoch)
        sampler = EpochBatchSampler(len(tr.dataset), cfg.batch_size, cfg.seed, epoch)
        for images, targets in DataLoader(tr.dataset, batch_sampler=sampler, collate_fn=detection_collate):
            tr.train_step(images, targets)
            if tr.step == STEPS_TO_LEAVE_CONSTANT:
                break
        epoch += 1
    end = probability_spread(anchor_face_probabilities(tr.model, img))
    assert end.median < 0.05, end
    assert end.max > 0.5, end
