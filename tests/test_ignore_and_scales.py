"""Ignore regions (pseudo-labels the teacher was unsure of), scale-coverage items, the dev-split scorer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from featherface._models.config import PriorConfig
from featherface._ops.priors import generate_priors
from featherface.train.ap import GroundTruthImage, score_detections
from featherface.train.augment import TrainTransform
from featherface.train.config import DataSource, TrainConfig
from featherface.train.data import FaceSample, read_jsonl, write_jsonl
from featherface.train.loss import MultiBoxLoss, hard_negative_mask
from featherface.train.matcher import IGNORE, match, positive_mask

PRIORS = generate_priors((160, 160), PriorConfig())


def _row(box: tuple[float, float, float, float], label: float) -> list[float]:
    return [*box, *([0.0] * 10), label]


def test_ignore_region_marks_background_priors_and_never_faces() -> None:
    face = _row((0.1, 0.1, 0.3, 0.3), -1.0)
    ignore = _row((0.6, 0.6, 0.8, 0.8), 0.0)
    _, conf_face, _ = match(torch.tensor([face]), PRIORS, PriorConfig().variances)
    _, conf, _ = match(torch.tensor([face, ignore]), PRIORS, PriorConfig().variances)
    # the face's priors are unchanged; some background priors became IGNORE, none became a face
    assert torch.equal(positive_mask(conf), positive_mask(conf_face))
    ignored = conf == IGNORE
    assert int(ignored.sum()) > 0
    assert bool((conf_face[ignored] == 0).all())
    # the ignored priors are the ones near the ignore box
    centres = PRIORS[ignored, :2]
    assert bool(((centres > 0.5) & (centres < 0.9)).all())


def test_only_ignore_rows_give_no_positive() -> None:
    _, conf, _ = match(torch.tensor([_row((0.2, 0.2, 0.5, 0.5), 0.0)]), PRIORS, PriorConfig().variances)
    assert not bool(positive_mask(conf).any())
    assert int((conf == IGNORE).sum()) > 0


def test_hard_negatives_skip_ignored_priors() -> None:
    ce = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    pos = torch.zeros(1, 5, dtype=torch.bool)
    ign = torch.tensor([[True, False, False, False, False]])
    mined = hard_negative_mask(ce, pos, 7, min_negatives=2, ignore=ign)
    assert mined.tolist() == [[False, True, True, False, False]]


def test_loss_does_not_punish_ignored_priors() -> None:
    n = PRIORS.shape[0]
    loss = MultiBoxLoss(PriorConfig(), min_negatives=16)
    loc, ldm = torch.zeros(1, n, 4), torch.zeros(1, n, 10)
    logits = torch.zeros(1, n, 2)
    targets = [torch.tensor([_row((0.1, 0.1, 0.3, 0.3), -1.0), _row((0.6, 0.6, 0.8, 0.8), 0.0)])]
    matched = loss.match(targets, PRIORS)
    ignored = matched[1] == IGNORE
    logits_face_on_ignored = logits.clone()
    logits_face_on_ignored[ignored] = torch.tensor([-10.0, 10.0])  # confident "face" where the teacher was unsure
    base = loss((loc, logits, ldm), None, PRIORS, matched=matched)["cls"]
    same = loss((loc, logits_face_on_ignored, ldm), None, PRIORS, matched=matched)["cls"]
    assert torch.allclose(base, same)
    # without the ignore row, the same scores are hard negatives and cost a lot
    plain = loss.match([targets[0][:1]], PRIORS)
    assert float(loss((loc, logits_face_on_ignored, ldm), None, PRIORS, matched=plain)["cls"]) > float(base) + 1.0


def _image(h: int = 300, w: int = 400) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def test_transform_carries_ignore_rows_through_crop_and_mirror() -> None:
    boxes = np.array([[100, 100, 160, 170]], np.float32)
    ignore = np.array([[220, 120, 260, 170]], np.float32)
    tf = TrainTransform(image_size=128, crop_scales=(1.0,))
    seen_flip = set()
    for seed in range(8):
        _, targets = tf(_image(), boxes, np.zeros((1, 5, 2), np.float32), np.zeros(1, bool),
                        np.random.default_rng(seed), ignore=ignore)
        labels = targets[:, 14].tolist()
        assert labels.count(-1.0) == 1 and labels.count(0.0) == 1
        face, ign = targets[targets[:, 14] == -1.0][0], targets[targets[:, 14] == 0.0][0]
        # the ignore box keeps its place relative to the face (right of it, or left after a mirror)
        seen_flip.add(bool(ign[0] < face[0]))
        assert ign[2] > ign[0] and ign[3] > ign[1]
    assert seen_flip == {True, False}


def test_transform_without_ignore_is_unchanged_by_the_new_options_at_zero() -> None:
    boxes = np.array([[100, 100, 160, 170]], np.float32)
    args = (_image(), boxes, np.zeros((1, 5, 2), np.float32), np.zeros(1, bool))
    a = TrainTransform(image_size=96)(*args, np.random.default_rng(3))
    b = TrainTransform(image_size=96, background_crops=0.0, whole_images=0.0)(*args, np.random.default_rng(3),
                                                                               ignore=np.zeros((0, 4), np.float32))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_background_crops_hold_no_face_and_whole_images_hold_small_faces() -> None:
    boxes = np.array([[100, 100, 160, 170]], np.float32)
    args = (_image(600, 800), boxes, np.zeros((1, 5, 2), np.float32), np.zeros(1, bool))
    bg = TrainTransform(image_size=96, background_crops=0.99)
    empty = [len(bg(*args, np.random.default_rng(s))[1]) == 0 for s in range(10)]
    assert sum(empty) >= 8
    whole = TrainTransform(image_size=96, whole_images=0.99)
    for s in range(5):
        _, t = whole(*args, np.random.default_rng(s))
        assert len(t) == 1
        # the whole 800 px photo padded to 800 x 800: the 60 px wide face keeps 60/800 of the side
        assert t[0, 2] - t[0, 0] == pytest.approx(60 / 800, abs=1e-5)


def test_transform_options_are_checked() -> None:
    with pytest.raises(ValueError, match="background_crops"):
        TrainTransform(background_crops=1.5)
    with pytest.raises(ValueError, match="below 1"):
        TrainTransform(background_crops=0.5, whole_images=0.5)


def test_jsonl_ignore_round_trip_and_exclude(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    samples = [
        FaceSample(root / "a" / "x.jpg", np.array([[1, 2, 30, 40]], np.float32), np.zeros((1, 5, 2)), [False],
                   ignore=np.array([[50, 50, 60, 70]], np.float32)),
        FaceSample(root / "a" / "y.jpg", np.zeros((0, 4)), np.zeros((0, 5, 2)), np.zeros(0, bool)),
    ]
    write_jsonl(samples, tmp_path / "l.jsonl", root)
    back = read_jsonl(tmp_path / "l.jsonl", root)
    assert np.array_equal(back[0].ignore, samples[0].ignore)
    assert back[1].ignore.shape == (0, 4)
    (tmp_path / "ex.txt").write_text("# dev\na/x.jpg\n")
    kept = DataSource("jsonl", str(tmp_path / "l.jsonl"), str(root), exclude=str(tmp_path / "ex.txt")).load()
    assert [s.image_path.name for s in kept] == ["y.jpg"]
    with pytest.raises(ValueError, match="ignore"):
        FaceSample(root / "z.jpg", np.zeros((0, 4)), np.zeros((0, 5, 2)), np.zeros(0, bool), ignore=np.zeros((2, 3)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "a/x.jpg", "faces": [], "ignore": [[1, 2, 3]]}) + "\n")
    with pytest.raises(ValueError, match="line 1.*ignore"):
        read_jsonl(bad, root)


def test_train_config_new_fields_resolve_and_validate(tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict(
        {"train_data": [{"format": "jsonl", "labels": "l.jsonl", "images": "i", "exclude": "dev.txt"}],
         "crop_scales": [0.2, 1.0], "background_crops": 0.1, "whole_images": 0.1, "cpu_bf16": True},
        base_dir=tmp_path,
    )
    assert cfg.train_data[0].exclude == str((tmp_path / "dev.txt").resolve())
    assert cfg.crop_scales == (0.2, 1.0)
    assert TrainConfig.from_dict(cfg.to_dict()).crop_scales == (0.2, 1.0)


def _gt(boxes: list[list[float]], counted: dict[str, list[int]], name: str = "0") -> GroundTruthImage:
    return GroundTruthImage("e", name, np.array(boxes, np.float64).reshape(-1, 4),
                            {k: np.array(v, np.int64) for k, v in counted.items()})


def test_score_detections_counts_only_the_setting_faces() -> None:
    # two faces, x y w h; the small one is counted only in "all"
    gt = [_gt([[10, 10, 50, 50], [100, 100, 10, 10]], {"large": [0], "all": [0, 1]})]
    hit_big = [10, 10, 50, 50, 0.9]
    hit_small = [100, 100, 10, 10, 0.8]
    false = [200, 200, 30, 30, 0.95]
    perfect = score_detections({"e": {"0": np.array([hit_big, hit_small])}}, gt, settings=("large", "all"))
    assert perfect == {"large": pytest.approx(1.0), "all": pytest.approx(1.0)}
    # the small-face hit is not a false positive in "large" (ignored there)
    assert score_detections({"e": {"0": np.array([hit_big, hit_small])}}, gt, settings=("large",))["large"] == pytest.approx(1.0)
    # a confident false box first halves the precision at the first recall step
    worse = score_detections({"e": {"0": np.array([false, hit_big, hit_small])}}, gt, settings=("all",))["all"]
    assert worse == pytest.approx(2 / 3, abs=0.01)


def test_multi_size_batches_keep_the_pixels_per_step(tmp_path: Path) -> None:
    import cv2

    from featherface.train.data import FaceDataset
    from featherface.train.sampler import EpochBatchSampler

    sampler = EpochBatchSampler(64, 16, seed=3, epoch=1, sizes=(480, 960), base_size=480)
    batches = list(sampler)
    assert len(batches) == 4 == len(sampler)
    assert batches == list(EpochBatchSampler(64, 16, seed=3, epoch=1, sizes=(480, 960), base_size=480))
    sizes = {b[0][1] for b in batches}
    assert sizes <= {480, 960}
    for b in batches:
        assert len({s for _, s in b}) == 1
        assert len(b) == (16 if b[0][1] == 480 else 4)
    # resume: start_batch skips whole batches, sizes included
    assert list(EpochBatchSampler(64, 16, seed=3, epoch=1, start_batch=2, sizes=(480, 960), base_size=480)) == batches[2:]
    with pytest.raises(ValueError, match="single process"):
        EpochBatchSampler(64, 16, seed=3, epoch=1, sizes=(480, 960), base_size=480, rank=0, world_size=2)
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), _image())
    ds = FaceDataset([FaceSample(path, np.array([[100, 100, 160, 170]], np.float32), np.zeros((1, 5, 2)),
                                 np.zeros(1, bool))], TrainTransform(image_size=64), seed=0)
    assert ds[0][0].shape == (3, 64, 64)
    assert ds[(0, 96)][0].shape == (3, 96, 96)
    with pytest.raises(ValueError, match="multiples of 32"):
        TrainConfig(image_sizes=(480, 500))


def test_model_card_lists_the_dev_candidates() -> None:
    from featherface._weights.registry import get_config
    from featherface.train.weights_folder import ModelCard

    card = ModelCard(title="t", summary="s", training_data="d", recipe="r", hardware="h",
                     dev_protocol="dev split, AP",
                     dev_results=({"candidate": "s4 step 500", "crops": 63520, "large": 78.66, "medium": 58.18,
                                   "all": 35.9},
                                  {"candidate": "packaged", "crops": 55520, "large": 79.53, "medium": 59.13,
                                   "all": 36.49, "shipped": True}))
    text = card.render(get_config("v2_ultra"), 1, 1, "0" * 64)
    assert "| s4 step 500 | 63,520 | 78.66 | 58.18 | 35.90 |  |" in text
    assert "| packaged | 55,520 | 79.53 | 59.13 | 36.49 | yes |" in text
    assert "dev split, AP" in text
