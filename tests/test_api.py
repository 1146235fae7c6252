"""FaceDetector: input types, batch == single, options, bad input, thread safety.

These tests use a v2_ultra network with fixed random weights, which produces plenty of (meaningless)
detections at a low score threshold; what is tested is the plumbing, which must be exact.
"""

from __future__ import annotations

import io
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import featherface
from featherface import Detection, detections_to_arrays
from featherface._api import FaceDetector
from featherface._options import DetectorOptions
from featherface.errors import ImageError
from featherface.io import load_image
from featherface.pipeline import make_batch

LOW = {"score_threshold": 0.05}


@pytest.fixture(scope="module")
def det() -> FaceDetector:
    torch.manual_seed(0)
    return featherface.load_model("v2_ultra", pretrained=False, device="cpu", **LOW)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    cv2.circle(img, (60, 45), 25, (230, 190, 160), -1)
    return img


def _same(a: list[Detection], b: list[Detection], tol: float = 1e-3) -> None:
    assert len(a) == len(b)
    ba, sa, la = detections_to_arrays(a)
    bb, sb, lb = detections_to_arrays(b)
    assert np.abs(ba - bb).max(initial=0) <= tol
    assert np.abs(sa - sb).max(initial=0) <= tol
    assert np.abs(la - lb).max(initial=0) <= tol


def test_import_is_cheap() -> None:
    code = (
        "import sys, featherface; "
        "bad = [m for m in ('cv2', 'huggingface_hub', 'featherface.train', 'featherface._api', 'torch') "
        "if m in sys.modules]; print(bad)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_detections_have_the_documented_form(det: FaceDetector, rgb: np.ndarray) -> None:
    faces = det.detect(rgb)
    assert faces, "random weights at threshold 0.05 should give detections"
    h, w = rgb.shape[:2]
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    for f in faces:
        x1, y1, x2, y2 = f.box
        assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
        assert 0.05 < f.score <= 1.0
        assert len(f.landmarks) == 5 and all(len(p) == 2 for p in f.landmarks)
        assert f.box_xywh == (x1, y1, x2 - x1, y2 - y1)
        assert f.width == pytest.approx(x2 - x1) and f.height == pytest.approx(y2 - y1)
        d = f.to_dict()
        assert set(d) == {"box", "score", "landmarks"} and isinstance(d["score"], float)
    with pytest.raises(AttributeError):
        faces[0].score = 1.0  # type: ignore[misc]
    assert hash(faces[0]) == hash(Detection(faces[0].box, faces[0].score, faces[0].landmarks))
    boxes, sc, lm = detections_to_arrays(faces)
    assert boxes.shape == (len(faces), 4) and sc.shape == (len(faces),) and lm.shape == (len(faces), 5, 2)
    assert detections_to_arrays([])[2].shape == (0, 5, 2)


def test_input_type_matrix(det: FaceDetector, rgb: np.ndarray, tmp_path: Path) -> None:
    ref = det.detect(rgb)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    png = tmp_path / "img.png"
    assert cv2.imwrite(str(png), bgr)
    encoded = png.read_bytes()
    cases: dict[str, object] = {
        "bgr ndarray": (bgr, "bgr"),
        "float rgb [0,1]": (rgb.astype(np.float32) / 255.0, "rgb"),
        "float64": (rgb.astype(np.float64) / 255.0, "rgb"),
        "rgba": (np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "rgb"),
        "path str": (str(png), "rgb"),
        "path": (png, "rgb"),
        "bytes": (encoded, "rgb"),
        "bytearray": (bytearray(encoded), "rgb"),
        "tensor chw uint8": (torch.from_numpy(rgb).permute(2, 0, 1), "rgb"),
        "tensor chw float": (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255, "rgb"),
        "tensor 1chw": (torch.from_numpy(rgb).permute(2, 0, 1)[None], "rgb"),
    }
    for name, (img, color) in cases.items():  # type: ignore[misc]
        _same(det.detect(img, color=color), ref, tol=2e-3 if "float" in name else 1e-4), name


def test_pil_input(det: FaceDetector, rgb: np.ndarray) -> None:
    pil = pytest.importorskip("PIL.Image", reason="Pillow is optional (dev extra)")
    _same(det.detect(pil.fromarray(rgb)), det.detect(rgb))
    _same(det.detect(pil.fromarray(rgb).convert("RGBA")), det.detect(rgb))


def test_grayscale_inputs_agree(det: FaceDetector, rgb: np.ndarray) -> None:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ref = det.detect(np.dstack([gray] * 3))
    _same(det.detect(gray), ref)
    _same(det.detect(gray[:, :, None]), ref)
    _same(det.detect(torch.from_numpy(gray)[None]), ref)


def test_exif_orientation_applied(det: FaceDetector) -> None:
    pil = pytest.importorskip("PIL.Image", reason="Pillow is optional (dev extra)")
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :40] = (255, 0, 0)  # left half red
    img = pil.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    loaded = load_image(buf.getvalue())
    assert loaded.shape[:2] == (80, 40)  # displayed orientation
    # after a 90-degree clockwise turn the red half is on top (BGR: red in channel 2)
    assert loaded[:30, :, 2].mean() > 200 and loaded[50:, :, 2].mean() < 60


def test_caller_data_never_mutated(det: FaceDetector, rgb: np.ndarray) -> None:
    arrays = [rgb.copy(), rgb.astype(np.float32) / 255, np.ascontiguousarray(rgb[:, :, ::-1])]
    before = [a.copy() for a in arrays]
    t = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    t_before = t.clone()
    for a, c in zip(arrays, ["rgb", "rgb", "bgr"]):
        det.detect(a, color=c)
        det.detect_batch([a, a], color=c)
    det.detect(t)
    featherface.draw(arrays[0], det.detect(arrays[0]))
    for a, b in zip(arrays, before):
        assert np.array_equal(a, b)
    assert torch.equal(t, t_before)
    assert arrays[0].flags.writeable


def test_batch_equals_single_for_different_sizes(det: FaceDetector, rgb: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    other = rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)
    imgs = [rgb, other, rgb[10:80, 5:110], other]
    batch = det.detect_batch(imgs)
    assert len(batch) == 4
    for img, got in zip(imgs, batch):
        _same(got, det.detect(img))
    t = torch.from_numpy(np.stack([rgb, rgb])).permute(0, 3, 1, 2)
    tb = det.detect_batch(t)
    _same(tb[0], det.detect(rgb)) and _same(tb[1], det.detect(rgb))
    assert det.detect_batch([]) == []


def test_options_and_overrides(det: FaceDetector, rgb: np.ndarray) -> None:
    base = det.detect(rgb)
    strict = det.detect(rgb, score_threshold=0.3)
    assert all(f.score > 0.3 for f in strict) and len(strict) <= len(base)
    assert len(det.detect(rgb, max_detections=3)) == min(3, len(base))
    loose_nms = det.detect(rgb, iou_threshold=0.9)
    assert len(loose_nms) >= len(base)
    assert det.options.score_threshold == 0.05  # per-call overrides do not stick
    # input_size: boxes come back in original pixels and inside the image
    big = det.detect(rgb, input_size=240)
    assert all(f.box[2] <= rgb.shape[1] and f.box[3] <= rgb.shape[0] for f in big)
    assert DetectorOptions(input_size=240).network_size(90, 120) == (180, 240)
    assert DetectorOptions(input_size=(64, 32)).network_size(90, 120) == (64, 32)
    assert DetectorOptions(max_size=60).network_size(90, 120) == (45, 60)
    assert DetectorOptions(max_size=600).network_size(90, 120) == (90, 120)
    with pytest.raises(TypeError, match="unknown detector option"):
        det.detect(rgb, threshold=0.5)
    with pytest.raises(ValueError, match="score_threshold"):
        det.detect(rgb, score_threshold=1.5)
    with pytest.raises(ValueError, match="input_size"):
        DetectorOptions(input_size=(0, 5))  # type: ignore[arg-type]


def test_scaled_detection_maps_back_to_original_pixels(det: FaceDetector, rgb: np.ndarray) -> None:
    """Detecting on a 2x upscaled copy with input_size = original size equals detecting the original."""
    up = cv2.resize(rgb, (240, 180), interpolation=cv2.INTER_NEAREST)
    small = det.detect(rgb)
    via = det.detect(up, input_size=(90, 120))
    # INTER_AREA of a nearest-upscaled image recovers the original exactly
    assert len(via) == len(small)
    b1, _, l1 = detections_to_arrays(small)
    b2, _, l2 = detections_to_arrays(via)
    assert np.abs(b2 / 2 - b1).max(initial=0) < 1e-3 and np.abs(l2 / 2 - l1).max(initial=0) < 1e-3


BAD_INPUTS = [
    ("empty array", np.zeros((0, 10, 3), np.uint8), ImageError, "empty"),
    ("zero width", np.zeros((10, 0), np.uint8), ImageError, "empty"),
    ("1-d", np.zeros(30, np.uint8), ImageError, "shape"),
    ("4-d array", np.zeros((1, 4, 4, 3), np.uint8), ImageError, "shape"),
    ("5 channels", np.zeros((4, 4, 5), np.uint8), ImageError, "channels"),
    ("2 channels", np.zeros((4, 4, 2), np.uint8), ImageError, "channels"),
    ("int64", np.zeros((4, 4, 3), np.int64), ImageError, "dtype"),
    ("bool", np.zeros((4, 4, 3), bool), ImageError, "dtype"),
    ("complex", np.zeros((4, 4, 3), complex), ImageError, "dtype"),
    ("nan", np.full((4, 4, 3), np.nan, np.float32), ImageError, "NaN"),
    ("inf", np.full((4, 4, 3), np.inf, np.float32), ImageError, "NaN or infinite"),
    ("float 0..255", np.full((4, 4, 3), 200.0, np.float32), ImageError, r"\[0, 1\]"),
    ("non-image bytes", b"definitely not an image", ImageError, "not a decodable image"),
    ("empty bytes", b"", ImageError, "empty"),
    ("missing file", Path("/nonexistent/face.jpg"), FileNotFoundError, "not found"),
    ("directory", Path("/"), ImageError, "directory"),
    ("int", 42, TypeError, "unsupported image type"),
    ("list", [[1, 2], [3, 4]], TypeError, "unsupported image type"),
    ("tensor 2 channels", torch.zeros(2, 4, 4), ImageError, "3 x H x W"),
    ("batch tensor to detect", torch.zeros(2, 3, 4, 4), ValueError, "detect_batch"),
]


@pytest.mark.parametrize(("name", "image", "exc", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_table(det: FaceDetector, name: str, image: object, exc: type, message: str) -> None:
    with pytest.raises(exc, match=message):
        det.detect(image)


def test_corrupt_file_and_absurd_size(det: FaceDetector, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    with pytest.raises(ImageError, match="broken.jpg"):
        det.detect(bad)
    huge = np.zeros((8000, 8000), np.uint8)  # 64 MP > the 40 MP default cap at the original size
    with pytest.raises(ValueError, match="max_input_pixels"):
        det.detect(huge, max_size=None)
    with pytest.raises(ValueError, match="max_input_pixels"):
        det.detect(huge, min_face_size=2.0)  # asks for a 80,000 px network input
    anywhere = det.detect(huge[:2000, :2000], max_size=64, score_threshold=0.0)  # downscaled is fine (random weights)
    assert all(0 <= v <= 2000 for d in anywhere for v in d.box) and max(d.box[2] for d in anywhere) > 64  # original pixels
    with pytest.raises(ValueError, match="color"):
        det.detect(np.zeros((4, 4, 3), np.uint8), color="hsv")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list"):
        det.detect_batch(np.zeros((4, 4, 3), np.uint8))


def test_hypothesis_arrays_never_crash_unexpectedly(det: FaceDetector) -> None:
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    shapes = st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from([0, 1, 2, 3, 4, 5]))
    dtypes = st.sampled_from([np.uint8, np.float32, np.int16, np.uint16])

    @settings(max_examples=40, deadline=None)
    @given(arrays(dtype=dtypes, shape=shapes))
    def check(arr: np.ndarray) -> None:
        before = arr.copy()
        try:
            out = det.detect(arr)
        except (ImageError, ValueError) as exc:
            assert str(exc)
        else:
            assert all(0 <= d.box[0] <= d.box[2] <= arr.shape[1] and 0 <= d.box[1] <= d.box[3] <= arr.shape[0] for d in out)
        assert np.array_equal(arr, before, equal_nan=True)

    check()


def test_thread_safety_concurrent_calls(det: FaceDetector, rgb: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    imgs = [rgb] + [rng.integers(0, 256, (50 + 7 * i, 70 + 5 * i, 3), dtype=np.uint8) for i in range(5)]
    expected = [det.detect(im, score_threshold=0.1 + 0.05 * (i % 3)) for i, im in enumerate(imgs)]
    jobs = [(i % len(imgs)) for i in range(36)]

    def run(i: int) -> list[Detection]:
        return det.detect(imgs[i], score_threshold=0.1 + 0.05 * (i % 3))

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, jobs))
    for i, got in zip(jobs, results):
        _same(got, expected[i])


def test_draw_returns_annotated_copy(det: FaceDetector, rgb: np.ndarray) -> None:
    faces = det.detect(rgb)[:3]
    out = featherface.draw(rgb, faces)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert out is not rgb and not np.array_equal(out, rgb)
    assert np.array_equal(featherface.draw(rgb, []), rgb)
    bgr_out = featherface.draw(np.ascontiguousarray(rgb[:, :, ::-1]), faces, color="bgr")
    assert np.array_equal(bgr_out[:, :, ::-1], out)


def test_unknown_model_and_weights_errors() -> None:
    with pytest.raises(ValueError, match="known models: v1, v2_ultra"):
        featherface.load_model("v9")
    from featherface.errors import WeightsError

    with pytest.raises(ValueError, match="pretrained=False"):
        featherface.load_model("v1", pretrained=False, weights="x.safetensors")
    with pytest.raises(WeightsError, match="not found"):
        featherface.load_model("v1", weights="/nonexistent/model.safetensors")


def test_repr_and_backend(det: FaceDetector) -> None:
    assert det.backend == "torch" and "v2_ultra" in repr(det) and det.name == "v2_ultra"


@pytest.mark.parametrize("channels_last", [False, True])
def test_to_tensor_layouts_and_views(rgb: np.ndarray, channels_last: bool) -> None:
    """The batch tensor equals ``float(BGR) - mean`` in NCHW for every array view load_image can return."""
    torch.manual_seed(0)
    d = featherface.load_model("v2_ultra", pretrained=False, device="cpu", channels_last=channels_last)
    ro = rgb.copy()
    ro.flags.writeable = False
    views = [
        load_image(rgb),  # RGB -> BGR: negative channel stride, read-only view of the caller's array
        load_image(ro, color="bgr"),  # read-only, contiguous
        load_image(rgb[::-1, ::2]),  # flipped rows and a column step
        load_image(rgb.astype(np.float32) / 255),  # float32 0..255
    ]
    for v in views:
        expect = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32) - np.array(d.config.mean_bgr, np.float32))
        got = make_batch([v, v], d.config.mean_bgr, d.runner.batch_spec)
        assert got.shape == (2, 3, *v.shape[:2]) and got.dtype == torch.float32
        assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        assert torch.equal(got[1], expect.permute(2, 0, 1))
    assert np.array_equal(ro, rgb)


def test_default_size_policy_caps_the_network_input() -> None:
    from featherface import DetectorOptions
    from featherface._options import MIN_FACE_NETWORK_PX

    opts = DetectorOptions()
    assert opts.max_size == 1024
    assert opts.network_size(3000, 4000) == (768, 1024)  # a 12 MP phone photo
    assert opts.network_size(480, 640) == (480, 640)  # smaller images keep their size
    assert DetectorOptions(max_size=None).network_size(3000, 4000) == (3000, 4000)
    # min_face_size picks the scale: a 40 px face becomes MIN_FACE_NETWORK_PX, up or down, no cap
    f = MIN_FACE_NETWORK_PX / 40.0
    assert DetectorOptions(min_face_size=40).network_size(3000, 4000) == (round(3000 * f), round(4000 * f))
    f = MIN_FACE_NETWORK_PX / 10.0
    assert DetectorOptions(min_face_size=10).network_size(480, 640) == (round(480 * f), round(640 * f))
    # an explicit input_size wins over min_face_size, and max_size applies to it
    assert DetectorOptions(min_face_size=10, input_size=2000).network_size(3000, 4000) == (768, 1024)
    with pytest.raises(ValueError, match="min_face_size"):
        DetectorOptions(min_face_size=0)
    with pytest.raises(TypeError, match="min_face_size"):
        DetectorOptions(min_face_size="20")  # type: ignore[arg-type]
