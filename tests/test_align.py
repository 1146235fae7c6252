"""``featherface.align`` / ``align_faces``: a face warped by a least-squares similarity onto the
5-point ArcFace template (continuous pixel coordinates, as for :class:`featherface.Detection`)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

import featherface
from featherface import Detection
from featherface._align import ARCFACE_TEMPLATE_112, similarity_transform, template

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.png"

TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    m = np.zeros((2, 3))
    m[:, :2] = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m[:, 2] = (tx, ty)
    return m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def dots_image(points: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Grey Gaussian dots centred on continuous-coordinate ``points`` (pixel (i, j) centre: (j + .5, i + .5))."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros(shape)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return np.repeat((np.clip(img, 0, 1) * 255).round().astype(np.uint8)[:, :, None], 3, axis=2)


def dot_centres(img: np.ndarray, expected: np.ndarray, radius: int) -> np.ndarray:
    """Intensity-weighted centroid (continuous coordinates) in a window around each expected point."""
    grey = img[:, :, 0].astype(np.float64)
    out = []
    for x, y in expected:
        x0, y0 = int(x) - radius, int(y) - radius
        win = grey[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1]
        yy, xx = np.mgrid[0:win.shape[0], 0:win.shape[1]] + 0.5
        out.append(((win * (xx + x0)).sum() / win.sum(), (win * (yy + y0)).sum() / win.sum()))
    return np.array(out)


def test_the_template_is_the_arcface_one() -> None:
    np.testing.assert_array_equal(ARCFACE_TEMPLATE_112, TEMPLATE_112)
    np.testing.assert_allclose(template(112), TEMPLATE_112)
    np.testing.assert_allclose(template(224), TEMPLATE_112 * 2)
    np.testing.assert_allclose(template((224, 112)), TEMPLATE_112 + [0, 56])  # scaled by min, centred
    np.testing.assert_allclose(template((112, 224)), TEMPLATE_112 + [56, 0])
    assert not ARCFACE_TEMPLATE_112.flags.writeable


@pytest.mark.parametrize(("scale", "degrees", "size"), [(2.5, 30.0, 112), (0.8, -50.0, 112), (3.0, 170.0, 160),
                                                       (1.7, 12.0, (128, 96))])
def test_dots_at_the_landmarks_land_on_the_template(scale: float, degrees: float, size: int | tuple[int, int]) -> None:
    tpl = template(size)
    # a face = the template seen through a similarity; draw dots there, then align it back
    face_to_image = similarity(scale, degrees, 0, 0)
    landmarks = apply(face_to_image, tpl)
    landmarks += 60 - landmarks.min(axis=0)  # inside the image with a margin
    shape = (int(landmarks[:, 1].max()) + 60, int(landmarks[:, 0].max()) + 60)
    image = dots_image(landmarks, shape, sigma=1.6 * scale)
    out = featherface.align(image, landmarks, size)
    h, w = (size, size) if isinstance(size, int) else size
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    found = dot_centres(out, tpl, radius=6)
    np.testing.assert_allclose(found, tpl, atol=0.2)  # within 0.2 px (the brief asks ~1 px)


def test_a_detection_and_its_landmark_array_give_the_same_crop() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (200, 240, 3), dtype=np.uint8)
    landmarks = apply(similarity(1.3, 10, 70, 40), TEMPLATE_112)
    face = Detection(box=(60.0, 30.0, 220.0, 190.0), score=0.9, landmarks=tuple(map(tuple, landmarks)))
    np.testing.assert_array_equal(featherface.align(image, face), featherface.align(image, landmarks))
    np.testing.assert_array_equal(featherface.align(image, face), featherface.align(image, landmarks.tolist()))


def test_least_squares_fit_matches_the_linear_solution() -> None:
    """With noisy landmarks the estimate is the least-squares similarity (checked against the linear
    least-squares solution for x' = a x - b y + tx, y' = b x + a y + ty)."""
    rng = np.random.default_rng(0)
    src = apply(similarity(1.9, 23, 40, 70), TEMPLATE_112) + rng.normal(0, 2.0, (5, 2))
    m = similarity_transform(src, TEMPLATE_112)
    rows = []
    for x, y in src:
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), TEMPLATE_112.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(m, [[a, -b, tx], [b, a, ty]], atol=1e-9)
    exact = similarity_transform(apply(similarity(0.7, -80, 5, 9), TEMPLATE_112), TEMPLATE_112)
    np.testing.assert_allclose(exact[:, :2], similarity(1 / 0.7, 80, 0, 0)[:, :2], atol=1e-12)  # the inverse
    np.testing.assert_allclose(apply(exact, apply(similarity(0.7, -80, 5, 9), TEMPLATE_112)), TEMPLATE_112, atol=1e-9)


def test_mirrored_landmarks_give_a_rotation_not_a_reflection() -> None:
    mirrored = TEMPLATE_112 * [-1, 1] + [200, 0]  # left and right swapped sides
    m = similarity_transform(mirrored, TEMPLATE_112)
    assert np.linalg.det(m[:, :2]) > 0


def test_colour_order_follows_draw(tmp_path: Path) -> None:
    rgb = np.zeros((150, 150, 3), np.uint8)
    rgb[..., 0] = 200  # red
    landmarks = apply(similarity(1.0, 0, 20, 20), TEMPLATE_112)
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    centre = (56, 56)
    assert tuple(featherface.align(rgb, landmarks)[centre]) == (200, 0, 0)  # RGB array -> RGB
    assert tuple(featherface.align(rgb[:, :, ::-1], landmarks, color="bgr")[centre]) == (0, 0, 200)  # BGR -> BGR
    for image in (path, path.read_bytes(), io.BytesIO(path.read_bytes())):  # files: RGB, as draw returns
        assert tuple(featherface.align(image, landmarks)[centre]) == (200, 0, 0)
    Image = pytest.importorskip("PIL.Image")
    assert tuple(featherface.align(Image.open(path), landmarks)[centre]) == (200, 0, 0)


def test_float_grey_and_read_only_inputs_give_uint8_and_are_not_modified() -> None:
    rng = np.random.default_rng(2)
    grey = rng.random((130, 140))
    before = grey.copy()
    landmarks = apply(similarity(1.0, 0, 15, 10), TEMPLATE_112)
    lm_before = landmarks.copy()
    out = featherface.align(grey, landmarks)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(grey, before)
    np.testing.assert_array_equal(landmarks, lm_before)
    # translation only: the crop is the input, shifted
    expected = np.rint(grey[10:122, 15:127] * 255).astype(np.uint8)
    np.testing.assert_allclose(out[..., 0].astype(int), expected, atol=1)
    frozen = (grey * 255).astype(np.uint8)
    frozen.flags.writeable = False
    assert featherface.align(frozen, landmarks).shape == (112, 112, 3)


def test_align_faces_stacks_align() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    lms = [apply(similarity(s, d, 30, 40), TEMPLATE_112) for s, d in [(1.0, 0), (1.5, 20), (0.6, -10)]]
    faces = [Detection(box=(0.0, 0.0, 1.0, 1.0), score=0.5, landmarks=tuple(map(tuple, lm))) for lm in lms]
    out = featherface.align_faces(image, faces, 96, color="bgr")
    assert out.shape == (3, 96, 96, 3) and out.dtype == np.uint8
    for crop, lm in zip(out, lms, strict=True):
        np.testing.assert_array_equal(crop, featherface.align(image, lm, 96, color="bgr"))
    np.testing.assert_array_equal(featherface.align_faces(image, np.stack(lms), 96, color="bgr"), out)
    assert featherface.align_faces(image, []).shape == (0, 112, 112, 3)


@pytest.mark.parametrize("size", [0, -5, 1.5, True, "112", None, (112,), (0, 112), (112, 112, 3), [112, 112]])
def test_bad_size_is_refused_naming_it(size: object) -> None:
    with pytest.raises(ValueError, match=r"size must be a positive int"):
        featherface.align(np.zeros((50, 50, 3), np.uint8), TEMPLATE_112, size)  # type: ignore[arg-type]


@pytest.mark.parametrize(("face", "error", "match"), [
    (np.zeros((4, 2)), ValueError, r"shape \(5, 2\), got \(4, 2\)"),
    (TEMPLATE_112.reshape(-1), ValueError, r"reshape\(5, 2\)"),
    (np.zeros((5, 3)), ValueError, r"shape \(5, 2\)"),
    (TEMPLATE_112 * [1, np.nan], ValueError, "NaN"),
    (np.ones((5, 2)), ValueError, "coincide"),
    ("left eye", TypeError, "Detection or a 5 x 2 array"),
    (None, TypeError, "Detection or a 5 x 2 array"),
    ({"left_eye": (1, 2)}, TypeError, "Detection or a 5 x 2 array"),
])
def test_bad_face_is_refused_naming_the_problem(face: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        featherface.align(np.zeros((50, 50, 3), np.uint8), face)  # type: ignore[arg-type]


def test_align_faces_names_the_bad_face_and_refuses_a_single_face() -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match=r"faces\[1\]: .*shape \(5, 2\)"):
        featherface.align_faces(image, [TEMPLATE_112, np.zeros((3, 2))])
    with pytest.raises(ValueError, match="use featherface.align"):
        featherface.align_faces(image, TEMPLATE_112)
    face = Detection(box=(0.0, 0.0, 1.0, 1.0), score=0.5, landmarks=tuple(map(tuple, TEMPLATE_112)))
    with pytest.raises(TypeError, match="use featherface.align"):
        featherface.align_faces(image, face)  # type: ignore[arg-type]


def test_the_packaged_detector_finds_the_aligned_face_where_the_template_is() -> None:
    """End to end with the trained weights: detect the astronaut, align, detect again in the crop."""
    det = featherface.load_model("v2_ultra", device="cpu", local_files_only=True)
    faces = det.detect(ASTRONAUT)
    assert faces and faces[0].score > 0.9
    landmarks = np.array(faces[0].landmarks)
    m = similarity_transform(landmarks, template(224))
    # a real face is not exactly the template: the least-squares residual is small, not zero
    assert np.abs(apply(m, landmarks) - template(224)).max() < 3.0
    crop = featherface.align(ASTRONAUT, faces[0], 224)  # RGB (a file)
    pad = 112  # the crop cuts the forehead and chin: give the detector the whole face
    again = det.detect(cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128)))
    assert again and again[0].score > 0.9
    # the detector's own landmark error, doubled by the zoom (eyes 38 px apart -> 70), is a few pixels
    np.testing.assert_allclose(np.array(again[0].landmarks) - pad, template(224), atol=10.0)
