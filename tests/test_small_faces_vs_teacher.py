"""The packaged weights find the small faces (20-32 px) that the reference V1 teacher finds, at the
original size and the default threshold."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import featherface
from featherface._api import FaceDetector
from tests.conftest import shared_file

ASTRONAUT = Path(__file__).parents[1] / "examples" / "images" / "astronaut.png"
ASTRONAUT_FACE = (179.0, 55.0, 268.0, 177.0)
HEIGHTS = (20, 24, 28, 32)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _canvas() -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Scaled copies of the astronaut photo (face 20-32 px high, 4 per height) on a grey canvas."""
    source = cv2.imread(str(ASTRONAUT))
    face_h = ASTRONAUT_FACE[3] - ASTRONAUT_FACE[1]
    side = round(source.shape[0] * max(HEIGHTS) / face_h)
    canvas = np.full((8 + len(HEIGHTS) * (side + 8), 8 + 4 * (side + 8), 3), 128, np.uint8)
    boxes = []
    y = 8
    for h in HEIGHTS:
        s = h / face_h
        tile = cv2.resize(source, (round(source.shape[1] * s), round(source.shape[0] * s)), interpolation=cv2.INTER_AREA)
        for k in range(4):
            x = 8 + k * (tile.shape[1] + 8)
            canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
            boxes.append(tuple(v * s + o for v, o in zip(ASTRONAUT_FACE, (x, y, x, y))))
        y += tile.shape[0] + 8
    return canvas, boxes


def _found(faces: list, truth: list[tuple[float, ...]]) -> list[bool]:
    return [any(_iou(f.box, t) >= 0.4 for f in faces) for t in truth]


@pytest.mark.xfail(strict=True, reason="known gap of the packaged v2_ultra weights (weights issue): the teacher "
                   "finds all 16 faces of 20-32 px, the packaged weights none at the default threshold")
def test_small_faces_found_where_the_teacher_finds_them(shared: Path) -> None:
    from featherface._weights.convert import load_reference_v1

    teacher_net = load_reference_v1(shared_file(shared, "data/weights/featherface_v1_reference.safetensors"))
    teacher = FaceDetector(teacher_net, teacher_net.config, device="cpu")
    student = featherface.load_model("v2_ultra", device="cpu", local_files_only=True)
    canvas, truth = _canvas()
    by_teacher = _found(teacher.detect(canvas, color="bgr", max_size=None), truth)
    by_student = _found(student.detect(canvas, color="bgr", max_size=None), truth)
    assert sum(by_teacher) >= 8, "the synthetic faces should be findable by the teacher"
    both = sum(t and s for t, s in zip(by_teacher, by_student))
    assert both >= 0.75 * sum(by_teacher), f"student found {both} of the {sum(by_teacher)} faces the teacher found"
