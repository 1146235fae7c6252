"""Drawing detections (and, for evaluation, nothing else: PR curves live in ``featherface.train``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featherface.io import ColorOrder, ImageInput, load_image, output_color
from featherface.types import Detection

__all__ = ["draw", "LANDMARK_COLORS_BGR"]

# one colour per landmark (BGR): left eye, right eye, nose, left mouth corner, right mouth corner
LANDMARK_COLORS_BGR = ((255, 0, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0), (0, 128, 255))


def draw(
    image: ImageInput,
    detections: Sequence[Detection],
    *,
    color: ColorOrder = "rgb",
    box_color: tuple[int, int, int] = (0, 255, 0),
    thickness: int | None = None,
    show_scores: bool = True,
    show_landmarks: bool = True,
) -> np.ndarray:
    """Return an annotated **copy** of ``image`` (uint8, ``H x W x 3``) with boxes and landmarks.

    The result has the colour order of the input for arrays and tensors (``color``), and RGB for
    files, bytes, file objects and PIL images (:func:`featherface.io.output_color`); ``box_color``
    is given in that same order. The input is not modified.
    """
    import cv2

    bgr = np.array(load_image(image, color=color), dtype=np.uint8, copy=True)  # our own copy
    h, w = bgr.shape[:2]
    out_rgb = output_color(image, color) == "rgb"
    box_bgr = tuple(int(c) for c in (box_color[::-1] if out_rgb else box_color))
    t = thickness or max(1, round(max(h, w) / 500))
    for d in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in d.box)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), box_bgr, t, cv2.LINE_AA)
        if show_scores:
            cv2.putText(bgr, f"{d.score:.2f}", (x1, max(0, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * t, box_bgr, max(1, t // 2), cv2.LINE_AA)
        if show_landmarks:
            r = max(1, t + 1)
            for (x, y), c in zip(d.landmarks, LANDMARK_COLORS_BGR):
                cv2.circle(bgr, (int(round(x)), int(round(y))), r, c, -1, cv2.LINE_AA)
    return bgr[:, :, ::-1].copy() if out_rgb else bgr
