"""``featherface.integrations.ray.RayFaceDetector``: the batch function alone, and on a local Ray cluster.

The cluster test skips when Ray Data is not installed (``pip install "featherface[ray]"``). Trained
weights are not published yet, so the tests write a weights folder of a seeded random v2_ultra with
``featherface.save_weights_folder`` and compare every row with direct ``detect`` calls on a
detector loaded from the same folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import featherface
from featherface import detections_to_arrays, save_weights_folder
from featherface._weights.registry import build_model, get_config
from featherface.integrations.ray import RayFaceDetector

OPTIONS = {"score_threshold": 0.05, "device": "cpu"}
ROOT = Path(__file__).resolve().parents[1]
SIZES = [(90, 120), (61, 97), (90, 120), (70, 105), (48, 64)]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights_folder(build_model("v2_ultra"), get_config("v2_ultra"), folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("ray_images")
    paths = []
    for i, (h, w) in enumerate(SIZES):
        rng = np.random.default_rng(i)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (230, 190, 160), -1)
        paths.append(root / f"img{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    (root / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    paths.append(root / "zz_broken.jpg")
    return paths


@pytest.fixture(scope="module")
def reference(weights: Path) -> featherface.FaceDetector:
    return featherface.load_model(weights=weights, **OPTIONS)


def _check_row(row: dict, expected: list) -> None:
    b, s, lm = detections_to_arrays(expected)
    assert np.asarray(row["boxes"]).reshape(-1, 4).shape == b.shape
    np.testing.assert_allclose(np.asarray(row["boxes"]).reshape(-1, 4), b, atol=1e-3)
    np.testing.assert_allclose(np.asarray(row["scores"]).reshape(-1), s, atol=1e-3)
    np.testing.assert_allclose(np.asarray(row["landmarks"]).reshape(-1, 5, 2), lm, atol=1e-3)


def test_batch_function_without_ray(weights: Path, images: list[Path], reference: featherface.FaceDetector) -> None:
    fn = RayFaceDetector(model=None, weights=str(weights), batch_size=2, **OPTIONS)
    paths = np.array([str(p) for p in images])
    out = fn({"path": paths, "id": np.arange(len(paths))})
    assert list(out) == ["path", "id", "boxes", "scores", "landmarks", "error"]
    assert np.array_equal(out["id"], np.arange(len(paths)))
    for i, p in enumerate(images[:-1]):
        assert out["error"][i] == ""
        _check_row({k: v[i] for k, v in out.items()}, reference.detect(p))
    assert out["error"][-1].startswith("ImageError") and out["boxes"][-1].shape == (0, 4)
    # encoded bytes and decoded RGB arrays (object column, as Ray gives ragged images)
    encoded = np.array([p.read_bytes() for p in images[:-1]], dtype=object)
    decoded = np.empty(len(images) - 1, dtype=object)
    for i, p in enumerate(images[:-1]):
        decoded[i] = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    for column, values in (("bytes", encoded), ("image", decoded)):
        out = fn({column: values})
        for i, p in enumerate(images[:-1]):
            _check_row({k: v[i] for k, v in out.items()}, reference.detect(p))
    same = np.stack([decoded[0], decoded[2]])  # a regular [B, H, W, 3] image column
    out = fn({"image": same})
    _check_row({k: v[1] for k, v in out.items()}, reference.detect(images[2]))
    with pytest.raises(KeyError, match="'image', 'bytes' or 'path'"):
        fn({"file": paths})


@pytest.mark.slow
def test_map_batches_on_a_local_ray_cluster(weights: Path, images: list[Path],
                                            reference: featherface.FaceDetector) -> None:
    """``examples/ray_folder.py``: ``ray.init(num_cpus=2)``, ``read_binary_files``, ``map_batches(
    RayFaceDetector, compute=ActorPoolStrategy(size=2), batch_format="numpy")``. Run as a subprocess
    (with a time limit, and so that Ray's process-wide setup stays out of the test process)."""
    pytest.importorskip("ray", reason='Ray is not installed: pip install "featherface[ray]"')
    pytest.importorskip("ray.data", reason='Ray Data is not installed: pip install "featherface[ray]"')
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, str(ROOT / "examples" / "ray_folder.py"), str(images[0].parent), "--weights", str(weights),
           "--device", "cpu", "--score-threshold", str(OPTIONS["score_threshold"]), "--actors", "2",
           "--batch-size", "2", "--num-cpus", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr[-3000:]  # zz_broken.jpg is reported, the others detected
    assert "zz_broken.jpg: ImageError" in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["image"]).name for r in records] == [p.name for p in images[:-1]]
    for record, path in zip(records, images[:-1]):
        faces = record["faces"]
        row = {"boxes": np.array([f["box"] for f in faces], dtype=np.float32),
               "scores": np.array([f["score"] for f in faces], dtype=np.float32),
               "landmarks": np.array([f["landmarks"] for f in faces], dtype=np.float32)}
        _check_row(row, reference.detect(path))
