"""Drawing detections (and, for evaluation, nothing else: PR curves live in ``featherface.train``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featherface.detection import Detection
from featherface.io import ColorOrder, ImageInput, load_image, output_color

__all__ = ["draw", "label_font", "label_origin", "LANDMARK_COLORS_BGR"]

# one colour per landmark (BGR): left eye, right eye, nose, left mouth corner, right mouth corner
LANDMARK_COLORS_BGR = ((255, 0, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0), (0, 128, 255))


def label_font(height: int, width: int) -> tuple[float, int]:
    """``(font_scale, thickness)`` of the score labels for an image of this size: about 1.6% of the
    longer side high (at least ~9 px), so that labels stay readable on large photos."""
    longer = max(height, width)
    scale = max(0.4, longer / 1000)
    return scale, max(1, round(scale * 1.5))


def label_origin(text: str, box: tuple[int, int, int, int], height: int, width: int, font_scale: float,
                 font_thickness: int, box_thickness: int = 1) -> tuple[int, int]:
    """Bottom-left corner (``cv2.putText``'s origin) of a box's label, so that the whole label is inside
    the image: above the box when there is room, else just below the box's top edge, inside it; shifted
    left at the right edge."""
    import cv2

    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thickness)
    x1, y1 = box[0], box[1]
    gap = max(2, box_thickness + 1)
    x = x1
    y = y1 - gap - baseline  # above the box: the text's bottom (with its descent) clears the top edge
    if y - th < 0:  # no room above: below the top edge, inside the box (clear of its left edge too)
        y = max(0, y1) + gap + th
        x = x1 + gap
    x = min(max(0, x), max(0, width - tw - 1))
    y = min(y, height - 1 - baseline)
    return x, max(th, y)


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
    font_scale, font_thickness = label_font(h, w)
    for d in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in d.box)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), box_bgr, t, cv2.LINE_AA)
        if show_scores:
            text = f"{d.score:.2f}"
            origin = label_origin(text, (x1, y1, x2, y2), h, w, font_scale, font_thickness, t)
            cv2.putText(bgr, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, box_bgr, font_thickness,
                        cv2.LINE_AA)
        if show_landmarks:
            r = max(1, t + 1)
            for (x, y), c in zip(d.landmarks, LANDMARK_COLORS_BGR):
                cv2.circle(bgr, (int(round(x)), int(round(y))), r, c, -1, cv2.LINE_AA)
    return bgr[:, :, ::-1].copy() if out_rgb else bgr
