"""Measure what upscaling (``input_size``) and ``score_threshold`` do for small faces.

    python examples/small_faces.py
    python examples/small_faces.py --heights 12 24 --upscales 1 2 --score-thresholds 0.5 --json
    python examples/small_faces.py portrait.jpg --face-box 120 80 220 210

The packaged ``v2_ultra`` weights are used by default; ``--weights FOLDER`` loads your own
(``config.json`` + ``model.safetensors``), ``--model v1`` the installed reference V1.

Builds one test image from copies of an image with one known face (default: the shipped astronaut
photo, whose face box is built in), each copy scaled so that its face is ``--heights`` pixels high,
``--copies`` copies per height, on a grey background. For every ``--upscales`` factor the image is
detected once with ``input_size`` = factor x its longer side (factor 1: the original size, the
default of ``detect``) and ``max_size=None`` (so that the default 1,024-pixel cap does not undo the
upscaling), at the lowest ``--score-thresholds`` value and with no ``pre_nms_top_k`` or
``max_detections`` cap. For each threshold the detections scoring above it are exactly those that a
run at that threshold returns (greedy NMS decides a box from the higher-scoring ones only), so one
run per factor serves every threshold. A pasted face is found when a detection overlaps it with
IoU >= ``--iou`` (default 0.4); a detection that finds no face is a false detection.

Prints a Markdown table, one row per (factor, threshold): faces found per face height, all faces
found, false detections, and the time of the detect call (one call after a warm-up; indicative).
The numbers depend on the weights: rerun it when they change.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from featherface import FaceDetector
from featherface.cli import CLIError, add_model_arguments, load_detector_from_args
from featherface.detection import Detection
from featherface.errors import ImageError
from featherface.io import read_image_file

ASTRONAUT = Path(__file__).resolve().parent / "images" / "astronaut.png"
ASTRONAUT_FACE = (174.0, 65.0, 262.0, 179.0)
"""Face box (x1, y1, x2, y2) of ``images/astronaut.png``, checked by eye: hairline to chin, ear to ear."""

BACKGROUND = 128
GAP = 8

Box = tuple[float, float, float, float]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", nargs="?", default=str(ASTRONAUT),
                   help="an image with exactly one face (default: examples/images/astronaut.png)")
    p.add_argument("--face-box", nargs=4, type=float, metavar=("X1", "Y1", "X2", "Y2"), default=None,
                   help="the face box of IMAGE in its pixels (needed for any image but the astronaut)")
    p.add_argument("--heights", nargs="+", type=int, default=[10, 14, 20, 28, 36, 48], metavar="PX",
                   help="face heights to paste, in pixels (default 10 14 20 28 36 48)")
    p.add_argument("--copies", type=int, default=3, metavar="N", help="copies per face height (default 3)")
    p.add_argument("--upscales", nargs="+", type=float, default=[1.0, 1.5, 2.0, 3.0], metavar="F",
                   help="input_size = F x the longer side of the test image (default 1 1.5 2 3)")
    p.add_argument("--score-thresholds", nargs="+", type=float, default=[0.3, 0.5, 0.7], metavar="T",
                   help="score thresholds to report (default 0.3 0.5 0.7)")
    p.add_argument("--iou", type=float, default=0.4, metavar="F",
                   help="IoU with a pasted face that counts as finding it (default 0.4)")
    p.add_argument("--json", action="store_true", help="print one JSON object per row instead of a table")
    p.add_argument("--save-image", metavar="PATH", default=None, help="also write the test image here")
    add_model_arguments(p, detection_options=False)
    return p.parse_args(argv)


class PastedFaces(NamedTuple):
    """The composed image (BGR) and its pasted faces: ``boxes[i]`` is ``heights[i]`` pixels high."""

    image: np.ndarray
    boxes: list[Box]
    heights: list[int]


def compose(source: np.ndarray, face: Box, heights: list[int], copies: int) -> PastedFaces:
    """Paste ``copies`` scaled copies of ``source`` per face height, one row per height."""
    face_h = face[3] - face[1]
    tiles = []
    for h in heights:
        s = h / face_h
        size = (max(1, round(source.shape[1] * s)), max(1, round(source.shape[0] * s)))
        tiles.append((h, s, cv2.resize(source, size, interpolation=cv2.INTER_AREA)))
    width = max(copies * (t.shape[1] + GAP) + GAP for _, _, t in tiles)
    height = sum(t.shape[0] + GAP for _, _, t in tiles) + GAP
    canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    boxes: list[Box] = []
    face_heights: list[int] = []
    y = GAP
    for h, s, tile in tiles:
        th, tw = tile.shape[:2]
        for k in range(copies):
            x = GAP + k * (tw + GAP)
            canvas[y:y + th, x:x + tw] = tile
            boxes.append((x + face[0] * s, y + face[1] * s, x + face[2] * s, y + face[3] * s))
            face_heights.append(h)
        y += th + GAP
    return PastedFaces(canvas, boxes, face_heights)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(faces: list[Detection], truth: list[Box], min_iou: float) -> tuple[list[bool], int]:
    """Greedy matching, best score first: which true boxes are found, and how many detections are false."""
    found = [False] * len(truth)
    false = 0
    for face in sorted(faces, key=lambda f: -f.score):
        best, best_iou = -1, min_iou
        for i, box in enumerate(truth):
            if not found[i]:
                v = iou(face.box, box)
                if v >= best_iou:
                    best, best_iou = i, v
        if best < 0:
            false += 1
        else:
            found[best] = True
    return found, false


def measure(detector: FaceDetector, test: PastedFaces, upscales: list[float], thresholds: list[float],
            min_iou: float) -> list[dict[str, Any]]:
    """One row per (upscale, threshold); see the module docstring."""
    low = min(thresholds)
    longer = max(test.image.shape[:2])
    detector.detect(test.image, color="bgr", score_threshold=low)  # warm-up
    rows: list[dict[str, Any]] = []
    for factor in upscales:
        input_size = None if factor == 1 else round(factor * longer)
        start = time.perf_counter()
        faces = detector.detect(test.image, color="bgr", score_threshold=low, input_size=input_size,
                                max_size=None, pre_nms_top_k=None, max_detections=None)
        ms = (time.perf_counter() - start) * 1000
        for t in sorted(thresholds):
            found, false = match([f for f in faces if f.score > t], test.boxes, min_iou)
            per_height = {}
            for h in dict.fromkeys(test.heights):
                hits = [ok for ok, fh in zip(found, test.heights, strict=True) if fh == h]
                per_height[h] = [sum(hits), len(hits)]
            rows.append({"upscale": factor, "input_size": input_size, "score_threshold": t,
                         "found_per_height": per_height, "found": sum(found), "faces": len(found),
                         "false_detections": false, "ms": round(ms, 1)})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| upscale | input_size | score_threshold | found per face height (px: found/pasted) | found | "
             "false detections | detect ms |", "|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        per = ", ".join(f"{h}: {k}/{n}" for h, (k, n) in r["found_per_height"].items())
        lines.append(f"| {r['upscale']:g} | {r['input_size'] or 'original'} | {r['score_threshold']:g} | {per} | "
                     f"{r['found']}/{r['faces']} | {r['false_detections']} | {r['ms']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.copies < 1 or any(h < 1 for h in args.heights) or any(f <= 0 for f in args.upscales):
        print("error: --copies, --heights and --upscales must be positive", file=sys.stderr)
        return 2
    if any(not 0 <= t <= 1 for t in args.score_thresholds) or not 0 < args.iou <= 1:
        print("error: --score-thresholds must be in [0, 1] and --iou in (0, 1]", file=sys.stderr)
        return 2
    if args.face_box is None and Path(args.image).resolve() != ASTRONAUT:
        print("error: give --face-box X1 Y1 X2 Y2 for an image other than the astronaut", file=sys.stderr)
        return 2
    face: Box = tuple(args.face_box) if args.face_box else ASTRONAUT_FACE  # type: ignore[assignment]
    if not (face[2] > face[0] and face[3] > face[1]):
        print("error: --face-box needs X2 > X1 and Y2 > Y1", file=sys.stderr)
        return 2
    try:
        detector = load_detector_from_args(args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    try:
        source = read_image_file(args.image)
    except (ImageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    test = compose(source, face, args.heights, args.copies)
    if args.save_image:
        cv2.imwrite(args.save_image, test.image)
    rows = measure(detector, test, args.upscales, args.score_thresholds, args.iou)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    height, width = test.image.shape[:2]
    print(f"{len(test.boxes)} faces pasted into a {width}x{height} image ({args.copies} per height); "
          f"{detector!r}; match: IoU >= {args.iou:g}\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
