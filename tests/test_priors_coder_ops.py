"""Priors, box/landmark coding and NMS against hand-computed values and naive references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from featherface._models.config import PriorConfig
from featherface._ops.box_coder import decode_boxes, decode_landmarks, encode_boxes, encode_landmarks
from featherface._ops.boxes import box_iou, nms
from featherface._ops.priors import feature_map_sizes, generate_priors, num_priors, priors_like

CFG = PriorConfig()
VAR = (0.1, 0.2)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((640, 640), 16800), ((405, 700), 11836), ((1, 1), 6), ((17, 33), 2 * (3 * 5 + 2 * 3 + 1 * 2))],
)
def test_prior_counts(size: tuple[int, int], expected: int) -> None:
    assert num_priors(size, CFG) == expected
    assert generate_priors(size, CFG).shape == (expected, 4)


def test_feature_map_sizes_use_ceil() -> None:
    assert feature_map_sizes((405, 700), CFG) == [(51, 88), (26, 44), (13, 22)]


def test_prior_grid_hand_computed() -> None:
    h, w = 40, 24
    pri = generate_priors((h, w), CFG).double()
    # level 0: 5 rows x 3 cols x 2 sizes; row-major, then size
    assert torch.allclose(pri[0], torch.tensor([4 / 24, 4 / 40, 16 / 24, 16 / 40], dtype=torch.float64), atol=1e-7)
    assert torch.allclose(pri[1], torch.tensor([4 / 24, 4 / 40, 32 / 24, 32 / 40], dtype=torch.float64), atol=1e-7)
    # second column of first row
    assert torch.allclose(pri[2, :2], torch.tensor([12 / 24, 4 / 40], dtype=torch.float64), atol=1e-7)
    # first prior of second row
    assert torch.allclose(pri[6, :2], torch.tensor([4 / 24, 12 / 40], dtype=torch.float64), atol=1e-7)
    # first prior of level 1 starts after 5*3*2 = 30 priors
    assert torch.allclose(pri[30], torch.tensor([8 / 24, 8 / 40, 64 / 24, 64 / 40], dtype=torch.float64), atol=1e-7)


def test_priors_are_cached_and_device_helper() -> None:
    a = generate_priors((300, 200), CFG)
    b = generate_priors((300, 200), CFG)
    assert a is b
    ref = torch.zeros(1, dtype=torch.float64)
    c = priors_like((300, 200), CFG, ref)
    assert c.dtype == torch.float64 and priors_like((300, 200), CFG, ref) is c
    with pytest.raises(ValueError, match="positive"):
        generate_priors((0, 10), CFG)


def test_prior_config_validation() -> None:
    with pytest.raises(ValueError, match="steps"):
        PriorConfig(min_sizes=((16,),), steps=(8, 16))


def test_box_coding_round_trip_and_known_values() -> None:
    torch.manual_seed(0)
    pri = generate_priors((64, 96), CFG)
    xy = torch.rand(pri.shape[0], 2) * 0.8
    wh = torch.rand(pri.shape[0], 2) * 0.2 + 0.01
    boxes = torch.cat([xy, xy + wh], 1)
    enc = encode_boxes(boxes, pri, VAR)
    assert torch.allclose(decode_boxes(enc, pri, VAR), boxes, atol=1e-5)
    # known value: a box equal to its prior encodes to zero
    p = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    b = torch.tensor([[0.4, 0.3, 0.6, 0.7]])
    assert torch.allclose(encode_boxes(b, p, VAR), torch.zeros(1, 4), atol=1e-6)
    # shifted by one prior width: tx = 1 / 0.1 = 10; doubled size: tw = ln 2 / 0.2
    b2 = torch.tensor([[0.5, 0.3, 0.7, 0.7]])
    assert torch.allclose(encode_boxes(b2, p, VAR), torch.tensor([[5.0, 0.0, 0.0, 0.0]]), atol=1e-5)
    b3 = torch.tensor([[0.3, 0.1, 0.7, 0.9]])
    assert torch.allclose(encode_boxes(b3, p, VAR)[0, 2:], torch.full((2,), math.log(2) / 0.2), atol=1e-5)


def test_landmark_coding_round_trip_and_batched() -> None:
    torch.manual_seed(1)
    pri = generate_priors((64, 64), CFG)
    lm = torch.rand(pri.shape[0], 10)
    assert torch.allclose(decode_landmarks(encode_landmarks(lm, pri, VAR), pri, VAR), lm, atol=1e-5)
    batch = torch.rand(3, pri.shape[0], 10)
    dec = decode_landmarks(batch, pri, VAR)
    assert torch.allclose(dec[2], decode_landmarks(batch[2], pri, VAR))
    # known value: zero offsets put every point on the prior centre
    z = decode_landmarks(torch.zeros(1, 10), pri[:1], VAR).reshape(5, 2)
    assert torch.allclose(z, pri[0, :2].expand(5, 2))


def _numpy_nms(dets: np.ndarray, thresh: float, plus_one: bool) -> list[int]:
    """Textbook greedy NMS (the reference py_cpu_nms formulation)."""
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2, s = dets.T
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-s, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + one) * np.maximum(0.0, yy2 - yy1 + one)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


@pytest.mark.parametrize("plus_one", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_numpy_reference(plus_one: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    dets = np.concatenate([xy, xy + wh, rng.uniform(0, 1, (n, 1))], 1).astype(np.float32)
    ref = _numpy_nms(dets.astype(np.float64), 0.4, plus_one)
    got = nms(torch.from_numpy(dets[:, :4]), torch.from_numpy(dets[:, 4]), 0.4, plus_one=plus_one)
    assert got.tolist() == ref
    capped = nms(torch.from_numpy(dets[:, :4]), torch.from_numpy(dets[:, 4]), 0.4, plus_one=plus_one, max_output=5)
    assert capped.tolist() == ref[:5]


def test_nms_edge_cases() -> None:
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long
    one = nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5)
    assert one.tolist() == [0]
    with pytest.raises(ValueError, match="shape"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    # identical boxes: the higher score survives; equal scores keep input order
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3)
    assert nms(boxes, torch.tensor([0.2, 0.9, 0.2]), 0.5).tolist() == [1]
    assert nms(boxes, torch.tensor([0.5, 0.5, 0.5]), 0.5).tolist() == [0]


def test_plus_one_changes_iou() -> None:
    a = torch.tensor([[0.0, 0, 1, 1]])
    b = torch.tensor([[1.0, 1, 2, 2]])
    assert box_iou(a, b).item() == 0.0
    assert box_iou(a, b, plus_one=True).item() == pytest.approx(1 / 7)


@pytest.mark.parametrize("threshold", [0.0, 0.02, 0.5, 0.9, 1.0])
def test_decode_prefilter_keeps_exactly_the_passing_priors(threshold: float) -> None:
    """Logit-space pre-filter + probabilities of the candidates == probabilities of every prior, then threshold."""
    from featherface._options import DetectorOptions
    from featherface.pipeline import _face_candidates, decode_to_pixels, face_probability
    from featherface.pipeline import postprocess as decode

    g = torch.Generator().manual_seed(3)
    n = 4200  # priors of a 320 x 320 input
    logits = torch.randn(2, n, 2, generator=g) * 4
    # rows straddling the threshold within float32 rounding, and saturated rows
    if 0.0 < threshold < 1.0:
        d = math.log(threshold / (1 - threshold))
        logits[:, :50, 0] = 1.5
        logits[:, :50, 1] = 1.5 + d + torch.linspace(-1e-5, 1e-5, 50)
    logits[:, 50:60] = torch.tensor([-300.0, 300.0])
    full = face_probability(logits)
    assert torch.allclose(full, torch.softmax(logits, dim=-1)[..., 1], rtol=1e-6, atol=1e-7)
    for b in range(2):
        expect = torch.nonzero(full[b] > threshold).squeeze(1)
        cand = _face_candidates(logits[b], threshold)
        assert set(expect.tolist()) <= set(cand.tolist())
        passed = cand[face_probability(logits[b, cand]) > threshold]
        assert torch.equal(passed, expect)
    priors = generate_priors((320, 320), PriorConfig())
    assert priors.shape[0] == n
    loc = torch.randn(2, n, 4, generator=g) * 0.1
    ldm = torch.randn(2, n, 10, generator=g) * 0.1
    opts = DetectorOptions(score_threshold=threshold, pre_nms_top_k=None, max_detections=None)
    got = decode((loc, logits, ldm), (320, 320), PriorConfig(), opts)
    size_wh = torch.tensor([320.0, 320.0])
    for b, a in enumerate(got):  # reference: probabilities of every prior, threshold, sort, decode, NMS
        keep = torch.nonzero(full[b] > threshold).squeeze(1)
        keep = keep[torch.sort(full[b, keep], descending=True, stable=True).indices]
        boxes, _ = decode_to_pixels(loc[b, keep], ldm[b, keep], priors[keep], (0.1, 0.2), size_wh)
        sel = nms(boxes, full[b, keep], 0.4)
        assert torch.equal(a.scores, full[b, keep][sel]) and torch.equal(a.boxes, boxes[sel])
