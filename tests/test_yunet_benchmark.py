"""benchmarks/yunet_widerface.py: YuNet's boxes reach the WIDER FACE scorer as corners, in pixels."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from featherface.train.second_labeller import yunet_faces
from tests.conftest import shared_file
from tests.test_packaged_weights import ASTRONAUT, ASTRONAUT_FACE, _iou

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "yunet_widerface.py"
YUNET = "data/peers/face_detection_yunet_2026may.onnx"


def _script() -> object:
    spec = importlib.util.spec_from_file_location("yunet_widerface", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_yunet_boxes_are_corners_on_the_face(shared: Path) -> None:
    pytest.importorskip("scipy", reason="the benchmark imports the WIDER FACE scorer (train extra)")
    script = _script()
    model = shared_file(shared, YUNET)
    detector = cv2.FaceDetectorYN.create(str(model), "", (320, 320), script.SCORE_THRESHOLD,
                                         script.NMS_THRESHOLD, script.TOP_K)
    image = cv2.imread(str(ASTRONAUT))
    before = image.copy()
    boxes, _, scores = yunet_faces(detector, image)
    assert np.array_equal(image, before)
    assert boxes.shape == (len(scores), 4) and boxes.dtype == np.float32
    best = int(np.argmax(scores))
    assert scores[best] > 0.8
    assert _iou(tuple(boxes[best]), ASTRONAUT_FACE) > 0.5, boxes[best]
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    blank = np.zeros((240, 320, 3), np.uint8)
    empty_boxes, _, empty_scores = yunet_faces(detector, blank)
    assert empty_boxes.shape[1] == 4 and len(empty_boxes) == len(empty_scores)


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    pytest.importorskip("scipy", reason="the benchmark imports the WIDER FACE scorer (train extra)")
    script = _script()
    with pytest.raises(SystemExit, match="no YuNet model file"):
        script.main(["--model", str(tmp_path / "missing.onnx"), "--widerface", str(tmp_path)])
