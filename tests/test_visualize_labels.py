"""Score labels of :func:`featherface._visualize.draw`: inside the image, and sized for the image."""

from __future__ import annotations

import numpy as np
import pytest

from featherface._visualize import draw
from featherface.detection import Detection


def _face(box: tuple[float, float, float, float], score: float = 0.97) -> Detection:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return Detection(box=box, score=score, landmarks=((cx, cy),) * 5)


def label_pixels(h: int, w: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """Mask of the pixels the label alone changes (drawing with and without scores)."""
    img = np.zeros((h, w, 3), np.uint8)
    with_label = draw(img, [_face(box)], color="bgr", show_landmarks=False)
    without = draw(img, [_face(box)], color="bgr", show_landmarks=False, show_scores=False)
    return np.any(with_label != without, axis=2)


def _rows(mask: np.ndarray) -> tuple[int, int]:
    ys = np.nonzero(mask.any(axis=1))[0]
    assert ys.size, "no label drawn"
    return int(ys.min()), int(ys.max())


def _cols(mask: np.ndarray) -> tuple[int, int]:
    return _rows(mask.T)


@pytest.mark.parametrize("size", [(480, 640), (3000, 4000)])
def test_label_of_a_box_at_the_top_edge_is_drawn_whole_inside_the_image(size) -> None:
    h, w = size
    box = (w * 0.2, 0.0, w * 0.5, h * 0.4)
    top = label_pixels(h, w, box)
    lower = label_pixels(h, w, (box[0], h * 0.3, box[2], h * 0.7))  # room above: label above the box
    top_rows, lower_rows = _rows(top), _rows(lower)
    # the whole label is visible: as tall and as wide as where it has room above the box
    assert top_rows[1] - top_rows[0] == lower_rows[1] - lower_rows[0]
    assert top.sum() == pytest.approx(lower.sum(), rel=0.05)
    assert top_rows[0] > 0  # below the box's top edge, not clipped by the image's
    assert lower_rows[1] < h * 0.3  # with room, it sits above the box


def test_label_at_the_right_edge_is_shifted_inside() -> None:
    h, w = 600, 800
    right = label_pixels(h, w, (w - 3, h * 0.5, w - 1, h * 0.6))
    middle = label_pixels(h, w, (w * 0.5, h * 0.5, w * 0.5 + 2, h * 0.6))
    assert right.sum() == pytest.approx(middle.sum(), rel=0.05)
    assert _cols(right)[1] < w - 1 and _cols(right)[1] - _cols(right)[0] == _cols(middle)[1] - _cols(middle)[0]


def test_label_height_grows_with_the_image() -> None:
    heights = []
    for h, w in ((300, 400), (1200, 1600), (3000, 4000)):
        rows = _rows(label_pixels(h, w, (w * 0.3, h * 0.4, w * 0.6, h * 0.8)))
        heights.append(rows[1] - rows[0] + 1)
    assert heights[0] >= 8  # readable on a small image
    assert heights[1] > 2 * heights[0] and heights[2] > 2 * heights[1]
    assert heights[2] / 3000 > 0.01  # about 1-2% of the image height on a large photo
