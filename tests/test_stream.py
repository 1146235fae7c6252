"""``FaceDetector.detect_stream`` and ``featherface detect --batch-size/--workers``.

Every result must equal a per-image ``detect`` call (same count; boxes, scores and landmarks within
1e-3: batched convolutions round differently), in input order, with unreadable inputs reported in
place instead of ending the stream.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import featherface
from featherface import Detection, detections_to_arrays
from featherface._api import FaceDetector
from featherface.errors import ImageError

LOW = {"score_threshold": 0.05}
SIZES = [(90, 120), (61, 97), (90, 120), (70, 105), (61, 97), (90, 120), (120, 90), (90, 120), (33, 47)]


@pytest.fixture(scope="module")
def det() -> FaceDetector:
    torch.manual_seed(0)
    return featherface.load_model("v2_ultra", pretrained=False, device="cpu", **LOW)


def _image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (230, 190, 160), -1)
    return img


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """PNG files of several sizes (some repeated, so buckets fill), a corrupt file and a missing one."""
    root = tmp_path_factory.mktemp("stream")
    paths = []
    for i, (h, w) in enumerate(SIZES):
        p = root / f"img{i:02d}.png"
        cv2.imwrite(str(p), _image(h, w, i))
        paths.append(p)
    bad = root / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    paths.insert(3, bad)
    paths.insert(7, root / "missing.png")
    return paths


def _same(a: list[Detection], b: list[Detection], tol: float = 1e-3) -> None:
    assert len(a) == len(b)
    for x, y in zip(detections_to_arrays(a), detections_to_arrays(b)):
        assert np.abs(x - y).max(initial=0) <= tol


def _check(det: FaceDetector, items: list, results: list, **options: object) -> None:
    assert [item for item, _ in results] == items  # input order, the input objects themselves
    for item, got in results:
        try:
            expected = det.detect(item, **options)
        except (ValueError, OSError) as exc:
            assert isinstance(got, type(exc)), (item, got)
            assert str(got) == str(exc)
            continue
        assert isinstance(got, list), (item, got)
        _same(got, expected)


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_equals_per_image_detect(det: FaceDetector, folder: list[Path], workers: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[tuple[int, ...]] = []
    forward = det.pipeline.runner

    def recording(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sizes.append(tuple(batch.shape))
        return forward(batch)

    recording.batch_spec = forward.batch_spec  # type: ignore[attr-defined]
    monkeypatch.setattr(det.pipeline, "runner", recording)
    results = list(det.detect_stream(folder, batch_size=3, workers=workers))
    monkeypatch.undo()
    # 4 images of 90x120 -> batches of 3 + 1; 61x97 twice; the others alone
    assert sorted(b for b, *_ in sizes) == [1, 1, 1, 1, 2, 3] and len(sizes) == 6
    _check(det, folder, results)
    errors = {Path(item).name: type(r) for item, r in results if isinstance(r, Exception)}
    assert errors == {"broken.jpg": ImageError, "missing.png": FileNotFoundError}
    assert sum(len(r) for _, r in results if isinstance(r, list)) > 0


def test_mixed_input_types_and_options(det: FaceDetector, folder: list[Path]) -> None:
    arrays = [_image(h, w, 50 + i) for i, (h, w) in enumerate(SIZES[:5])]
    items: list = [arrays[0], str(folder[0]), folder[1].read_bytes(), arrays[1], "nope.png", arrays[2],
                   torch.from_numpy(arrays[3]).permute(2, 0, 1), arrays[0]]
    for workers in (0, 2):
        results = list(det.detect_stream(items, batch_size=2, workers=workers, input_size=64))
        assert len(results) == len(items) and all(a is b for a, (b, _) in zip(items, results))
        _check(det, items, results, input_size=64)  # input_size=64: most images share a bucket


def test_small_max_pending_and_lazy_endless_stream(det: FaceDetector, folder: list[Path]) -> None:
    # every size different and at most 2 waiting: partial buckets run early, order kept
    items = [_image(40 + i, 50 + 2 * i, i) for i in range(7)]
    results = list(det.detect_stream(iter(items), batch_size=4, max_pending=2))
    _check(det, items, results)
    # an endless iterator of frames works with workers=0 (consumed lazily)
    frame = _image(48, 64, 3)
    first = list(itertools.islice(det.detect_stream(itertools.repeat(frame), batch_size=4), 6))
    assert len(first) == 6
    _same(first[5][1], det.detect(frame))  # type: ignore[arg-type]
    assert list(det.detect_stream([], workers=2)) == []
    with pytest.raises(TypeError, match="iterable of images"):
        det.detect_stream(frame)
    with pytest.raises(ValueError, match="batch_size"):
        det.detect_stream([frame], batch_size=0)
    with pytest.raises(TypeError, match="unknown detector option"):
        det.detect_stream([frame], threshold=0.3)


def test_cli_batch_size_and_workers_give_the_same_json(folder: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    from featherface import cli

    root = str(folder[0].parent)
    common = ["detect", root, "--json", "--random-weights", "--device", "cpu", "--score-threshold", "0.05"]
    assert cli.main(common) == 1  # the corrupt file fails, the others are reported
    plain = capsys.readouterr()
    assert cli.main([*common, "--batch-size", "4", "--workers", "2"]) == 1
    batched = capsys.readouterr()
    a = [json.loads(x) for x in plain.out.splitlines()]
    b = [json.loads(x) for x in batched.out.splitlines()]
    assert [r["image"] for r in a] == [r["image"] for r in b] and len(a) == len(SIZES)
    for ra, rb in zip(a, b):
        assert (ra["width"], ra["height"]) == (rb["width"], rb["height"])
        assert len(ra["faces"]) == len(rb["faces"])
        for fa, fb in zip(ra["faces"], rb["faces"]):
            assert np.allclose(fa["box"], fb["box"], atol=1e-3) and abs(fa["score"] - fb["score"]) <= 1e-3
    assert "broken.jpg" in batched.err and "1 of 10 images failed" in batched.err
    assert cli.main([*common, "--batch-size", "0"]) == 2


def test_workers_do_not_hang_after_opencv_threads_ran_in_the_parent(folder: list[Path]) -> None:
    """Regression: after OpenCV's thread pool ran in the parent, reconfiguring OpenCV threads in a
    forked DataLoader worker (``cv2.setNumThreads``) deadlocked it. Run in a subprocess with a time
    limit so that a hang fails the test instead of blocking the suite."""
    import os
    import subprocess
    import sys

    script = f"""
import cv2, numpy as np, torch, featherface
img = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
for _ in range(3):
    cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)  # parallel in OpenCV's pool
torch.manual_seed(0)
det = featherface.load_model("v2_ultra", pretrained=False, device="cpu")
paths = {[str(p) for p in folder]!r}
out = list(det.detect_stream(paths, batch_size=4, workers=2, input_size=40))
print(len(out), sum(isinstance(r, Exception) for _, r in out))
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [str(len(folder)), "2"]
