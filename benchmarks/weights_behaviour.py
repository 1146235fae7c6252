"""What a v2_ultra weights folder does on the photos and frames the packaged-weights tests use.

For each weights folder (or ``packaged``): boxes on blank frames (black, grey, white; the sizes of
``tests/test_packaged_weights.py``), how many of 10 uniform-noise frames get a box, the astronaut photo
(faces above 0.5, best score, IoU with the hand-drawn face box) and the astronaut upscaled to 2048 px
(boxes at the default ``max_size`` of 1024 and at the original size), and how many of the 16 small
faces (20-32 px) of ``tests/test_small_faces_vs_teacher.py`` it finds at the original size. The tests
ask for 0, 0, one face, 1 box, and at least three quarters of the small faces the teacher finds.
Also: the best score on each small face, and the astronaut magnified 1x-4x at its original size (the
best score of a box that is not the face, and how many such boxes pass the default threshold).
Used to judge a candidate before it ships (docs/training.md)::

    python benchmarks/weights_behaviour.py packaged ../runs/ship_h600
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

import featherface

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from test_packaged_weights import ASTRONAUT, ASTRONAUT_FACE, BLANK_SIZES, _iou  # noqa: E402
from test_small_faces_vs_teacher import _canvas, _found  # noqa: E402


def behaviour(weights: str) -> dict[str, object]:
    det = featherface.load_model("v2_ultra", weights=None if weights == "packaged" else weights, device="cpu",
                                 local_files_only=True)
    blank = sum(len(det.detect(np.full((h, w, 3), level, np.uint8))) for h, w in BLANK_SIZES for level in (0, 127, 255))
    rng = np.random.default_rng(0)
    noise = sum(bool(det.detect(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))) for _ in range(10))
    faces = det.detect(ASTRONAUT)
    big = cv2.resize(cv2.imread(str(ASTRONAUT)), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    capped, full = det.detect(big, color="bgr"), det.detect(big, color="bgr", max_size=None)
    canvas, truth = _canvas()
    small = _found(det.detect(canvas, color="bgr", max_size=None), truth)
    on_canvas = det.detect(canvas, color="bgr", max_size=None, score_threshold=0.02)
    small_scores = [max([f.score for f in on_canvas if _iou(f.box, t) >= 0.4] or [0.0]) for t in truth]
    return {"weights": weights, "blank_frame_boxes": blank, "noise_frames_with_a_box": noise,
            "astronaut_faces_above_0.5": len([f for f in faces if f.score > 0.5]),
            "astronaut_best": {"score": round(faces[0].score, 3), "iou": round(_iou(faces[0].box, ASTRONAUT_FACE), 3)}
            if faces else None,
            "astronaut_2048_boxes_at_1024": len(capped),
            "astronaut_2048_scores_at_1024": [round(f.score, 3) for f in capped],
            "astronaut_2048_boxes_original_size": len(full),
            "small_faces_found": f"{sum(small)}/{len(small)}",
            "small_faces_best_scores": [round(min(small_scores), 3), round(max(small_scores), 3)],
            "astronaut_magnified": magnified(det)}


def magnified(det: featherface.FaceDetector) -> dict[str, dict[str, float]]:
    """The astronaut photo magnified 1x-4x (bicubic) at its original size (``max_size=None``): the best
    score of a box that is not the face (IoU < 0.3 with the scaled face box) and how many such boxes
    score above the default threshold."""
    source = cv2.imread(str(ASTRONAUT))
    out = {}
    for m in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        image = cv2.resize(source, None, fx=m, fy=m, interpolation=cv2.INTER_CUBIC)
        face = tuple(v * m for v in ASTRONAUT_FACE)
        others = [f.score for f in det.detect(image, color="bgr", max_size=None, score_threshold=0.05)
                  if _iou(f.box, face) < 0.3]
        out[f"{m:g}x"] = {"best_other": round(max(others or [0.0]), 3),
                          "boxes_above_0.5": sum(score > 0.5 for score in others)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+", help="weights folders, or 'packaged'")
    for w in ap.parse_args(argv).weights:
        print(json.dumps(behaviour(w)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
