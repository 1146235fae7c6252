"""Tests of ``featherface.train.augment``, the RetinaFace training augmentation (crop, photometric
distortion, pad, mirror, resize; ``data/data_augment.py`` of github biubug6/Pytorch_Retinaface)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from featherface.train.augment import (
    CROP_SCALES,
    MEAN_BGR,
    TARGET_DIM,
    EvalTransform,
    TrainTransform,
    mirror,
    normalise_to_image,
    pad_to_square,
    photometric_distort,
    random_crop,
    resize,
)

MEAN = np.array(MEAN_BGR, dtype=np.float32)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def to_uint8(chw: np.ndarray, mean: np.ndarray = MEAN) -> np.ndarray:
    """Undo the mean subtraction and the CHW layout of a network input."""
    return np.clip(np.round(chw.transpose(1, 2, 0) + mean), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------- synthetic face scene

FACE = 72  # side of every synthetic face, input pixels
DOT = 3  # landmark dots are (2 * DOT + 1)^2 black squares
HUES = (0, 60, 120)  # OpenCV hue of each face colour: red, green, blue
COLOURS = {0: (0, 0, 255), 60: (0, 255, 0), 120: (255, 0, 0)}
# landmark layout inside a face, fractions of its side: left eye, right eye, nose, left/right mouth corner
LAYOUT = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])


def make_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """A 480x360 grey image with six 72x72 faces in a 3x2 grid, coloured red/green/blue twice; faces 1
    and 4 have no landmarks, the others have black 7x7 dots centred on their (frontal) landmarks."""
    height, width = 360, 480
    image = np.full((height, width, 3), 128, np.uint8)
    boxes, landmarks, has, hues = [], [], [], []
    for index, (x1, y1) in enumerate([(40, 50), (200, 50), (360, 50), (40, 220), (200, 220), (360, 220)]):
        hue = HUES[index % 3]
        image[y1 : y1 + FACE, x1 : x1 + FACE] = COLOURS[hue]
        boxes.append([x1, y1, x1 + FACE, y1 + FACE])
        with_points = index not in (1, 4)
        points = np.zeros((5, 2))
        if with_points:
            centres = np.floor(np.array([x1, y1]) + LAYOUT * FACE).astype(int)
            for cx, cy in centres:
                image[cy - DOT : cy + DOT + 1, cx - DOT : cx + DOT + 1] = 0
            points = centres + 0.5  # the continuous centre of pixel (cx, cy)
        landmarks.append(points)
        has.append(with_points)
        hues.append(hue)
    return (
        image,
        np.array(boxes, np.float32),
        np.array(landmarks, np.float32),
        np.array(has, bool),
        hues,
    )


def hue_distance(a: np.ndarray | float, b: float) -> np.ndarray:
    d = np.abs(np.asarray(a, dtype=np.float64) - b) % 180
    return np.minimum(d, 180 - d)


def check_alignment(image_chw: np.ndarray, targets: np.ndarray, hues: list[int], has: np.ndarray) -> None:
    """Boxes cover their face's colour and nothing beyond; landmarks sit on the dots."""
    size = image_chw.shape[1]
    pixels = to_uint8(image_chw)
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV).astype(np.int32)
    coloured = hsv[:, :, 1] > 50  # background and dots are grey/black (saturation 0) after any distortion
    assert len(targets) >= 1
    # output pixels per input pixel: an unclipped box has the largest normalised width (all faces are FACE)
    scale = float(np.max(targets[:, 2] - targets[:, 0])) * size / FACE
    margin = int(math.ceil(1.5 * scale)) + 2
    next_face = 0
    for row in targets:
        x1, y1, x2, y2 = row[:4] * size
        inner = (
            slice(int(y1) + margin, int(math.ceil(y2)) - margin),
            slice(int(x1) + margin, int(math.ceil(x2)) - margin),
        )
        region_coloured = coloured[inner]
        if region_coloured.size == 0:
            continue  # a sliver left by the crop: nothing to check inside
        assert region_coloured.mean() > 0.85, (
            f"box {row[:4]} does not cover a face ({region_coloured.mean():.2f})"
        )
        hue = float(np.median(hsv[:, :, 0][inner][region_coloured]))
        # rows are the kept faces in input order: match the row's colour to the next face of that colour
        while next_face < len(hues) and hue_distance(hue, hues[next_face]) > 25:
            next_face += 1
        assert next_face < len(hues), f"box {row[:4]} has hue {hue}, matching no remaining face in order"
        assert (row[14] == 1.0) == bool(has[next_face])
        next_face += 1
        # tightness: a band just outside each edge that is inside the image is not face-coloured
        bands = []
        if y1 - margin - 3 >= 0:
            bands.append(
                coloured[int(y1) - margin - 3 : int(y1) - margin, int(x1) + margin : int(x2) - margin]
            )
        if y2 + margin + 3 <= size:
            bands.append(
                coloured[int(y2) + margin + 1 : int(y2) + margin + 4, int(x1) + margin : int(x2) - margin]
            )
        if x1 - margin - 3 >= 0:
            bands.append(
                coloured[int(y1) + margin : int(y2) - margin, int(x1) - margin - 3 : int(x1) - margin]
            )
        if x2 + margin + 3 <= size:
            bands.append(
                coloured[int(y1) + margin : int(y2) - margin, int(x2) + margin + 1 : int(x2) + margin + 4]
            )
        for band in bands:
            if band.size:
                assert band.mean() < 0.15, f"face colour extends beyond box {row[:4]}"
    # landmarks that the crop did not clamp to its border lie on a black dot
    for row in targets[targets[:, 14] > 0]:
        points = row[4:14].reshape(5, 2)
        for x, y in points:
            if 0 < x < 1 and 0 < y < 1:
                px, py = int(x * size), int(y * size)
                assert pixels[py, px].max() < 90, (
                    f"landmark ({x:.3f}, {y:.3f}) is not on a dot: {pixels[py, px]}"
                )


def test_train_transform_keeps_boxes_and_landmarks_on_their_pixels() -> None:
    image, boxes, landmarks, has, hues = make_scene()
    transform = TrainTransform()
    cropped = 0
    for seed in range(40):
        out, targets = transform(image, boxes, landmarks, has, rng(seed))
        assert out.shape == (3, 640, 640) and out.dtype == np.float32
        check_alignment(out, targets, hues, has)
        cropped += len(targets) < 6
    assert cropped > 10  # the crop path was exercised


def test_alignment_through_the_pad_path() -> None:
    image, boxes, landmarks, has, hues = make_scene()
    transform = TrainTransform(max_tries=0)  # every crop "fails": pad to square, mirror, resize
    mirrored = 0
    for seed in range(12):
        out, targets = transform(image, boxes, landmarks, has, rng(seed))
        assert len(targets) == 6
        check_alignment(out, targets, hues, has)
        mirrored += bool(targets[0, 0] > 0.5)  # face 0 is at the left of the scene
        # the padding (bottom quarter of the 480x480 square) is the mean colour: zero after subtraction
        assert np.abs(out[:, 500:, :]).max() < 1.5
    assert 0 < mirrored < 12


def test_mirror_formulae_and_point_swap() -> None:
    image = np.zeros((40, 100, 3), np.uint8)
    image[:, :50] = 255
    boxes = np.array([[10, 20, 30, 40]], np.float32)
    landmarks = np.array([[[15, 25], [25, 25], [20, 30], [16, 35], [24, 35]]], np.float32)
    flipped_seen = kept_seen = False
    for seed in range(20):
        out, out_boxes, out_landmarks = mirror(image, boxes, landmarks, rng(seed))
        if np.array_equal(out, image):
            kept_seen = True
            np.testing.assert_array_equal(out_boxes, boxes)
            np.testing.assert_array_equal(out_landmarks, landmarks)
            continue
        flipped_seen = True
        np.testing.assert_array_equal(out, image[:, ::-1])
        np.testing.assert_array_equal(out_boxes, [[70, 20, 90, 40]])
        expected = [[[75, 25], [85, 25], [80, 30], [76, 35], [84, 35]]]
        np.testing.assert_array_equal(out_landmarks, expected)
        # a frontal face stays frontal: left eye left of right eye, left mouth corner left of right one
        assert out_landmarks[0, 0, 0] < out_landmarks[0, 1, 0]
        assert out_landmarks[0, 3, 0] < out_landmarks[0, 4, 0]
    assert flipped_seen and kept_seen


def test_frontal_faces_stay_frontal_through_the_transform() -> None:
    image, boxes, landmarks, has, _ = make_scene()
    square = np.full((480, 480, 3), 128, np.uint8)
    square[:360] = image
    transform = TrainTransform(crop_scales=(1.0,))  # the only crop is the whole square image
    mirrored = 0
    for seed in range(16):
        _, targets = transform(square, boxes, landmarks, has, rng(seed))
        assert len(targets) == 6
        mirrored += bool(targets[0, 0] > 0.5)
        points = targets[targets[:, 14] > 0, 4:14].reshape(-1, 5, 2)
        assert np.all(points[:, 0, 0] < points[:, 1, 0])  # eyes
        assert np.all(points[:, 3, 0] < points[:, 4, 0])  # mouth corners
        assert np.all(points[:, 0, 1] < points[:, 2, 1]) and np.all(points[:, 2, 1] < points[:, 3, 1])
    assert 0 < mirrored < 16


def test_same_seed_same_output_different_seed_different_output() -> None:
    image, boxes, landmarks, has, _ = make_scene()
    transform = TrainTransform(image_size=320)
    a_image, a_targets = transform(image, boxes, landmarks, has, rng(7))
    b_image, b_targets = transform(image, boxes, landmarks, has, rng(7))
    np.testing.assert_array_equal(a_image, b_image)
    np.testing.assert_array_equal(a_targets, b_targets)
    c_image, c_targets = transform(image, boxes, landmarks, has, rng(8))
    assert not (np.array_equal(a_image, c_image) and np.array_equal(a_targets, c_targets))


def test_global_random_state_is_not_used() -> None:
    image, boxes, landmarks, has, _ = make_scene()
    transform = TrainTransform(image_size=160)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    first = transform(image, boxes, landmarks, has, rng(3))
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # nothing drawn from the global RNG
    np.random.seed(12345)
    second = transform(image, boxes, landmarks, has, rng(3))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_caller_arrays_are_not_modified() -> None:
    image, boxes, landmarks, has, _ = make_scene()
    originals = [a.copy() for a in (image, boxes, landmarks, has)]
    for array in (image, boxes, landmarks, has):
        array.setflags(write=False)  # any in-place write would raise
    for seed in range(6):
        TrainTransform(image_size=256)(image, boxes, landmarks, has, rng(seed))
        random_crop(image, boxes, landmarks, has, rng(seed))
        mirror(image, boxes, landmarks, rng(seed))
        photometric_distort(image, rng(seed))
        pad_to_square(image)
        resize(image, 64, rng(seed))
        EvalTransform(image_size=64)(image, boxes, landmarks, has, rng(seed))
    for before, after in zip(originals, (image, boxes, landmarks, has)):  # noqa: B905
        np.testing.assert_array_equal(before, after)
    # results never alias the inputs
    out_image, out_boxes, out_landmarks, _, _ = random_crop(image, boxes, landmarks, has, rng(0), max_tries=0)
    assert not np.shares_memory(out_image, image) and not np.shares_memory(out_boxes, boxes)
    assert out_image.flags.writeable and out_landmarks.flags.writeable


# --------------------------------------------------------------------------------------------- crop


def coordinate_image(width: int, height: int) -> np.ndarray:
    """Every pixel encodes its own (x, y): channel 0 = x % 256, 1 = y % 256, 2 = (x // 256) + 16 (y // 256)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs % 256, ys % 256, xs // 256 + 16 * (ys // 256)], axis=-1).astype(np.uint8)


def decode_origin(crop: np.ndarray) -> tuple[int, int]:
    b, g, r = (int(v) for v in crop[0, 0])
    return b + 256 * (r % 16), g + 256 * (r // 16)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    width = draw(st.integers(8, 300))
    height = draw(st.integers(8, 300))
    n = draw(st.integers(0, 6))
    boxes, landmarks, has = [], [], []
    for _ in range(n):
        x1 = draw(st.floats(-10, width - 1, allow_nan=False))
        y1 = draw(st.floats(-10, height - 1, allow_nan=False))
        w = draw(st.floats(0.5, max(1.0, width * 0.8), allow_nan=False))
        h = draw(st.floats(0.5, max(1.0, height * 0.8), allow_nan=False))
        boxes.append([x1, y1, x1 + w, y1 + h])
        fractions = np.array(draw(st.lists(st.floats(0, 1), min_size=10, max_size=10))).reshape(5, 2)
        landmarks.append(np.array([x1, y1]) + fractions * np.array([w, h]))
        has.append(draw(st.booleans()))
    return (
        coordinate_image(width, height),
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(landmarks, np.float32).reshape(-1, 5, 2),
        np.array(has, bool),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scene=scenes(), seed=st.integers(0, 2**32 - 1))
def test_random_crop_acceptance_rule_and_geometry(scene, seed) -> None:
    image, boxes, landmarks, has = scene
    height, width = image.shape[:2]
    out, out_boxes, out_landmarks, out_has, pad_needed = random_crop(image, boxes, landmarks, has, rng(seed))
    if pad_needed:
        note("crop failed")
        np.testing.assert_array_equal(out, image)
        np.testing.assert_array_equal(out_boxes, boxes)
        np.testing.assert_array_equal(out_has, has)
        np.testing.assert_array_equal(out_landmarks[has], landmarks[has])
        assert not out_landmarks[~has].any()
        return
    side = out.shape[0]
    assert out.shape == (side, side, 3)
    assert side in {max(1, int(s * min(width, height))) for s in CROP_SCALES}
    left, top = decode_origin(out)
    np.testing.assert_array_equal(out, image[top : top + side, left : left + side])
    lo = np.array([left, top], np.float32)
    hi = lo + side
    # acceptance: at least one GT box lies entirely inside the crop
    fully_inside = np.all(boxes[:, :2] >= lo, axis=1) & np.all(boxes[:, 2:] <= hi, axis=1)
    assert fully_inside.any()
    # kept: the GTs whose centres are strictly inside, clipped and shifted
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    keep = np.all((centres > lo) & (centres < hi), axis=1)
    np.testing.assert_array_equal(out_has, has[keep])
    expected_boxes = np.concatenate(
        [np.maximum(boxes[keep, :2], lo), np.minimum(boxes[keep, 2:], hi)], 1
    ) - np.tile(lo, 2)
    np.testing.assert_allclose(out_boxes, expected_boxes, atol=1e-4)
    assert np.all(out_boxes >= 0) and np.all(out_boxes <= side)
    expected_landmarks = np.clip(landmarks[keep] - lo, 0, side)
    expected_landmarks[~has[keep]] = 0
    np.testing.assert_allclose(out_landmarks, expected_landmarks, atol=1e-4)


def test_crop_fails_when_no_box_can_fit() -> None:
    image = coordinate_image(100, 50)
    boxes = np.array([[0, 0, 100, 50]], np.float32)  # wider than any square crop (side <= 50)
    landmarks = np.zeros((1, 5, 2), np.float32)
    has = np.zeros(1, bool)
    out, out_boxes, _, _, pad_needed = random_crop(image, boxes, landmarks, has, rng(0))
    assert pad_needed
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_boxes, boxes)
    # through the whole transform: padded to 100x100, normalised by 100
    image_chw, targets = TrainTransform(image_size=200)(image, boxes, landmarks, has, rng(0))
    np.testing.assert_allclose(targets[:, :4], [[0, 0, 1, 0.5]], atol=1e-6)
    assert np.abs(image_chw[:, 104:, :]).max() < 1.5  # the padded half is the mean colour


def test_min_face_filter_uses_training_scale() -> None:
    image = coordinate_image(200, 200)
    boxes = np.array([[50, 50, 70, 70]], np.float32)  # 20 px: 64 px at 640 for a 200 px crop, more if smaller
    landmarks = np.zeros((1, 5, 2), np.float32)
    has = np.zeros(1, bool)
    for seed in range(10):
        *_, pad_needed = random_crop(image, boxes, landmarks, has, rng(seed), min_face=60, out_size=640)
        assert not pad_needed
        *_, pad_needed = random_crop(image, boxes, landmarks, has, rng(seed), min_face=1000, out_size=640)
        assert pad_needed


def test_image_without_faces_is_padded() -> None:
    image = np.full((60, 90, 3), 200, np.uint8)
    empty = (np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, bool))
    *_, pad_needed = random_crop(image, *empty, rng(0))
    assert pad_needed
    image_chw, targets = TrainTransform(image_size=90)(image, *empty, rng(0))
    assert image_chw.shape == (3, 90, 90) and targets.shape == (0, TARGET_DIM)
    assert np.abs(image_chw[:, 62:, :]).max() < 1.5


# ------------------------------------------------------------------------------- normalised targets


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scene=scenes(), seed=st.integers(0, 2**32 - 1))
def test_targets_are_normalised_and_labelled(scene, seed) -> None:
    image, boxes, landmarks, has = scene
    image_chw, targets = TrainTransform(image_size=64)(image, boxes, landmarks, has, rng(seed))
    assert image_chw.shape == (3, 64, 64) and image_chw.dtype == np.float32
    assert targets.dtype == np.float32 and targets.ndim == 2 and targets.shape[1] == TARGET_DIM
    assert len(targets) <= len(boxes)
    assert np.all(targets[:, :14] >= 0) and np.all(targets[:, :14] <= 1)
    assert np.all(targets[:, 2] > targets[:, 0]) and np.all(targets[:, 3] > targets[:, 1])
    assert set(np.unique(targets[:, 14])) <= {1.0, -1.0}
    assert not targets[targets[:, 14] < 0, 4:14].any()
    assert (targets[:, 14] > 0).sum() <= has.sum()


def test_faces_without_landmarks_keep_label_minus_one_and_zero_landmarks() -> None:
    image, boxes, landmarks, _, _ = make_scene()
    has = np.zeros(len(boxes), bool)
    for seed in range(20):  # about half of these are mirrored: x = W - 0 must not leak into the targets
        _, targets = TrainTransform(image_size=128)(image, boxes, landmarks, has, rng(seed))
        assert len(targets) > 0
        assert np.all(targets[:, 14] == -1.0)
        assert not targets[:, 4:14].any()


# --------------------------------------------------------------------------------- photometric, etc.


def test_photometric_applies_brightness_and_contrast_with_probability_half() -> None:
    grey = np.full((8, 8, 3), 100, np.uint8)  # saturation 0: only brightness and contrast can change it
    unchanged = 0
    for seed in range(400):
        out = photometric_distort(grey, rng(seed))
        assert out.dtype == np.uint8 and out.shape == grey.shape
        value = int(out[0, 0, 0])
        assert np.all(out == value)
        assert math.floor((100 - 32) * 0.5) - 1 <= value <= math.ceil((100 + 32) * 1.5) + 1
        unchanged += value == 100
    # P(both off) = 1/4 (+ ~1% of draws too small to change the value): 100 +- 3 sigma
    assert 70 <= unchanged <= 135


def test_photometric_hue_shift_is_bounded_and_wraps() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[:] = (0, 0, 128)  # OpenCV hue 0, so shifts wrap around 180; dim enough that no op clips at 255
    hues = []
    for seed in range(200):
        hsv = cv2.cvtColor(photometric_distort(red, rng(seed)), cv2.COLOR_BGR2HSV)
        hues.append(int(hsv[0, 0, 0]))
    hues_arr = np.array(hues)
    assert np.all(hue_distance(hues_arr, 0) <= 20)  # +-18, plus uint8 rounding
    assert (hues_arr > 150).any() and ((hues_arr > 0) & (hues_arr < 30)).any()  # both directions, wrapped
    assert 0.35 < np.mean(hues_arr == 0) < 0.75  # hue op applied about half the time


def test_photometric_clips_to_uint8_range() -> None:
    image = np.zeros((2, 256, 3), np.uint8)
    image[0, :, :] = np.arange(256, dtype=np.uint8)[:, None]
    image[1] = 255
    for seed in range(50):
        out = photometric_distort(image, rng(seed))
        assert out.dtype == np.uint8
        # brightness/contrast/saturation are monotone per channel on a grey ramp: no wrap-around
        assert np.all(np.diff(out[0, :, 0].astype(int)) >= 0)


def test_pad_to_square_places_image_top_left() -> None:
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = pad_to_square(image, (104.0, 117.0, 123.0))
    assert out.shape == (50, 50, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:30], image)
    assert np.all(out[30:] == np.array([104, 117, 123], np.uint8))
    tall = pad_to_square(image.transpose(1, 0, 2).copy())
    assert tall.shape == (50, 50, 3)
    assert np.all(tall[:, 30:] == np.array([104, 117, 123], np.uint8))


def test_resize_draws_all_five_interpolations() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (101, 101, 3), dtype=np.uint8)
    outputs = set()
    for seed in range(60):
        out = resize(noise, 64, rng(seed))
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8
        outputs.add(out.tobytes())
    assert len(outputs) == 5


def test_eval_transform_pads_resizes_and_normalises() -> None:
    image = np.full((100, 200, 3), 50, np.uint8)
    boxes = np.array([[50, 25, 150, 75]], np.float32)
    landmarks = np.array([[[80, 40], [120, 40], [100, 50], [85, 60], [115, 60]]], np.float32)
    has = np.ones(1, bool)
    out, targets = EvalTransform(image_size=100)(image, boxes, landmarks, has, rng(0))
    assert out.shape == (3, 100, 100) and out.dtype == np.float32
    np.testing.assert_allclose(targets[0, :4], [0.25, 0.125, 0.75, 0.375])
    np.testing.assert_allclose(targets[0, 4:6], [0.4, 0.2])
    assert targets[0, 14] == 1.0
    np.testing.assert_allclose(
        out[:, :45, :], (50 - MEAN)[:, None, None].repeat(45, 1).repeat(100, 2), atol=1
    )
    assert np.abs(out[:, 55:, :]).max() < 1.5
    again, _ = EvalTransform(image_size=100)(image, boxes, landmarks, has, rng(1))
    np.testing.assert_array_equal(out, again)


def test_invalid_inputs_are_rejected() -> None:
    image, boxes, landmarks, has, _ = make_scene()
    with pytest.raises(ValueError, match="uint8"):
        TrainTransform()(image.astype(np.float32), boxes, landmarks, has, rng(0))
    with pytest.raises(ValueError, match="same length"):
        TrainTransform()(image, boxes[:2], landmarks, has, rng(0))
    with pytest.raises(ValueError, match="crop_scales"):
        TrainTransform(crop_scales=(0.0, 1.0))
    with pytest.raises(ValueError, match="image_size"):
        EvalTransform(image_size=0)


def test_normalise_to_image_divides_by_the_size_and_clips() -> None:
    """One implementation for boxes and landmarks, NumPy arrays and torch tensors."""
    import torch

    boxes = np.array([[-10.0, 5.0, 50.0, 120.0], [4.0, 10.0, 20.0, 30.0]], np.float32)
    expected = np.array([[0.0, 5 / 100, 1.0, 1.0], [4 / 40, 10 / 100, 20 / 40, 30 / 100]], np.float32)
    np.testing.assert_array_equal(normalise_to_image(boxes, 40, 100), expected)
    assert torch.equal(normalise_to_image(torch.from_numpy(boxes), 40, 100), torch.from_numpy(expected))
    landmarks = np.array([[[20.0, 50.0], [-1.0, 101.0], [40.0, 100.0], [0.0, 0.0], [10.0, 25.0]]], np.float32)
    got = normalise_to_image(landmarks, 40, 100)
    assert got.shape == (1, 5, 2)
    np.testing.assert_array_equal(got[0], np.float32([[0.5, 0.5], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.25, 0.25]]))
    np.testing.assert_array_equal(normalise_to_image(landmarks.reshape(1, 10), 40, 100), got.reshape(1, 10))
    assert normalise_to_image(np.zeros((0, 4), np.float32), 40, 100).shape == (0, 4)


def test_progress_bar_is_off_when_disabled() -> None:
    from featherface.train.progress import progress_bar

    assert progress_bar(10, unit="img", enabled=False) is None
    bar = progress_bar(10, unit="step", initial=3, enabled=True)
    assert (bar.total, bar.n, bar.unit) == (10, 3, "step")
    bar.close()
