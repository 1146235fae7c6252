"""Smoke tests: every script in ``examples/`` runs end to end (random weights: mechanics only)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from featherface.detection import Detection

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ASTRONAUT = EXAMPLES / "images" / "astronaut.png"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))
RANDOM = ["--random-weights", "--device", "cpu"]


def run_example(script: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_image_is_the_astronaut():
    img = cv2.imread(str(ASTRONAUT))
    assert img is not None and img.shape == (512, 512, 3)
    assert "public domain" in (EXAMPLES / "images" / "README.md").read_text().lower()


def test_every_example_is_tested_and_documented():
    assert set(SCRIPTS) == {"align_faces.py", "blur_faces.py", "detect_folder.py", "detect_image.py", "ray_folder.py",
                            "small_faces.py", "webcam.py"}
    for name in SCRIPTS:
        module = load_example(name[:-3])
        assert module.__doc__ and module.__doc__.strip(), name
        assert module.parse_args.__code__.co_varnames[:1] == module.main.__code__.co_varnames[:1] == ("argv",), name
        assert name in (ROOT / "docs" / "examples.md").read_text(), f"{name} is not described in docs/examples.md"


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script, capsys):
    module = load_example(script[:-3])
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--random-weights" in out and "--score-threshold" in out and "--weights" in out


def test_detect_image(tmp_path):
    out = tmp_path / "annotated.jpg"
    proc = run_example("detect_image.py", str(ASTRONAUT), "--out", str(out), *RANDOM,
                       "--score-threshold", "0", "--max-detections", "2")
    assert proc.returncode == 0, proc.stderr
    assert "2 face(s)" in proc.stdout and proc.stdout.count("left_eye") == 2
    annotated = cv2.imread(str(out))
    assert annotated is not None and annotated.shape == (512, 512, 3)


def test_detect_folder(tmp_path):
    astronaut = cv2.imread(str(ASTRONAUT))
    cv2.imwrite(str(tmp_path / "x.png"), cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(tmp_path / "y.jpg"), cv2.resize(astronaut, (128, 96), interpolation=cv2.INTER_AREA))
    (tmp_path / "z.jpg").write_bytes(b"broken")
    proc = run_example("detect_folder.py", str(tmp_path), "--batch-size", "2", *RANDOM,
                       "--score-threshold", "0", "--max-detections", "2")
    assert proc.returncode == 1  # z.jpg is unreadable: reported, skipped, exit 1
    assert "z.jpg" in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(Path(r["image"]).name, r["width"], r["height"]) for r in records] == [("x.png", 160, 160),
                                                                                 ("y.jpg", 128, 96)]
    assert all(len(r["faces"]) == 2 for r in records)


# ray_folder.py runs on a local Ray cluster in tests/test_ray.py (skipped without Ray installed)


def test_webcam_on_a_video_file_headless(tmp_path):
    video, out = tmp_path / "in.avi", tmp_path / "out.avi"
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (96, 64))
    assert writer.isOpened()
    for _ in range(5):
        writer.write(cv2.GaussianBlur(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), (5, 5), 0))
    writer.release()
    proc = run_example("webcam.py", "--source", str(video), "--max-frames", "3", "--no-display",
                       "--output", str(out), *RANDOM, "--score-threshold", "0", "--max-detections", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("3 frame(s), 6 face(s)")
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (64, 96, 3)
        frames += 1
    cap.release()
    assert frames == 3


def test_blur_faces_changes_only_the_reported_regions(tmp_path):
    out = tmp_path / "anonymised.png"  # lossless, so untouched pixels compare exactly
    proc = run_example("blur_faces.py", str(ASTRONAUT), "--out", str(out), *RANDOM,
                       "--score-threshold", "0", "--max-detections", "3", "--margin", "0.25")
    assert proc.returncode == 0, proc.stderr
    regions = [tuple(map(int, m)) for m in re.findall(r"region=\[(\d+), (\d+), (\d+), (\d+)\]", proc.stdout)]
    assert len(regions) == 3
    before, after = cv2.imread(str(ASTRONAUT)), cv2.imread(str(out))
    assert after.shape == before.shape
    inside = np.zeros(before.shape[:2], dtype=bool)
    for x1, y1, x2, y2 in regions:
        assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
        inside[y1:y2, x1:x2] = True
        roi_before = before[y1:y2, x1:x2]
        if roi_before.reshape(-1, 3).std(axis=0).max() > 0:  # a flat region cannot change when blurred
            assert not np.array_equal(roi_before, after[y1:y2, x1:x2]), (x1, y1, x2, y2)
    assert np.array_equal(before[~inside], after[~inside])


def test_align_faces_writes_one_crop_per_face(tmp_path):
    out = tmp_path / "aligned"
    proc = run_example("align_faces.py", str(ASTRONAUT), "--out-dir", str(out), "--size", "96", *RANDOM,
                       "--score-threshold", "0", "--max-detections", "2")
    assert proc.returncode == 0, proc.stderr
    assert "2 face(s) aligned to 96x96" in proc.stdout
    crops = sorted(out.glob("*.png"))
    assert [p.name for p in crops] == ["astronaut_face1.png", "astronaut_face2.png"]
    assert all(cv2.imread(str(p)).shape == (96, 96, 3) for p in crops)
    assert run_example("align_faces.py", str(ASTRONAUT), "--out-dir", str(out), "--size", "0", *RANDOM).returncode == 2


def test_pixelate_and_regions_helpers():
    blur = load_example("blur_faces")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    regions = [(10, 5, 40, 35), (70, 50, 80, 60)]
    for method in ("gaussian", "pixelate"):
        out = blur.anonymise(img, regions, method, blocks=4)
        mask = np.zeros((60, 80), dtype=bool)
        for x1, y1, x2, y2 in regions:
            mask[y1:y2, x1:x2] = True
            assert not np.array_equal(out[y1:y2, x1:x2], img[y1:y2, x1:x2]), method
        assert np.array_equal(out[~mask], img[~mask]), method
    pix = blur.anonymise(img, [(0, 0, 40, 40)], "pixelate", blocks=4)[:40, :40]
    assert len(np.unique(pix.reshape(-1, 3), axis=0)) <= 16  # 4 x 4 cells

    from featherface import Detection

    face = Detection(box=(10.5, 20.0, 30.5, 60.0), score=0.9, landmarks=((0.0, 0.0),) * 5)
    assert blur.face_region(face, 0.1, 100, 100) == (8, 16, 33, 64)
    assert blur.face_region(face, 1.0, 40, 70) == (0, 0, 40, 70)  # clipped to the image


def test_small_faces_pastes_known_faces_and_scores_them():
    small = load_example("small_faces")
    source = cv2.imread(str(ASTRONAUT))
    test = small.compose(source, small.ASTRONAUT_FACE, [10, 20], 2)
    assert len(test.boxes) == 4 and test.heights == [10, 10, 20, 20]
    assert [round(b[3] - b[1]) for b in test.boxes] == [10, 10, 20, 20]  # the face is that many pixels high
    x1, y1, x2, y2 = (round(v) for v in test.boxes[2])
    assert test.image[y1:y2, x1:x2].std() > 10  # a face, not the grey background
    faces = [Detection(box=test.boxes[3], score=0.9, landmarks=((0.0, 0.0),) * 5),
             Detection(box=(0.0, 0.0, 5.0, 5.0), score=0.8, landmarks=((0.0, 0.0),) * 5)]
    found, false = small.match(faces, test.boxes, 0.4)
    assert found == [False, False, False, True] and false == 1


@pytest.mark.slow
def test_small_faces_runs(tmp_path):
    proc = run_example("small_faces.py", "--heights", "16", "32", "--copies", "1", "--upscales", "1", "2",
                       "--score-thresholds", "0.3", "0.6", "--json", "--save-image", str(tmp_path / "t.png"), *RANDOM)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["upscale"], r["score_threshold"]) for r in rows] == [(1, 0.3), (1, 0.6), (2, 0.3), (2, 0.6)]
    assert all(r["faces"] == 2 and set(r["found_per_height"]) == {"16", "32"} for r in rows)
    assert rows[0]["input_size"] is None and rows[2]["input_size"] == 2 * max(cv2.imread(str(tmp_path / "t.png")).shape[:2])
    table = run_example("small_faces.py", "--heights", "16", "--copies", "1", "--upscales", "1",
                        "--score-thresholds", "0.5", *RANDOM)
    assert table.returncode == 0, table.stderr
    assert "| upscale | input_size | score_threshold |" in table.stdout
    bad = run_example("small_faces.py", str(tmp_path / "t.png"), *RANDOM)
    assert bad.returncode == 2 and "--face-box" in bad.stderr
