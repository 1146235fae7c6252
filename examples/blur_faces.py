"""Anonymise an image: blur or pixelate every detected face, padded by a margin.

    python examples/blur_faces.py group.jpg --out group_anonymised.jpg
    python examples/blur_faces.py group.jpg --out out.png --method pixelate --blocks 8 --margin 0.3

The packaged ``v2_ultra`` weights are used by default; ``--weights FOLDER`` loads your own
(``config.json`` + ``model.safetensors``), ``--model v1`` the installed reference V1.

Each face box is grown by ``--margin`` (a fraction of its width and height on every side), rounded
outwards to whole pixels and clipped to the image; only the pixels inside those regions change. One
line per region is printed: ``face I: score=S region=[x1, y1, x2, y2]`` (pixel columns x1..x2-1,
rows y1..y2-1). Lower ``--score-threshold`` to anonymise more aggressively (missed faces are the
costly error here).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from featherface.cli import CLIError, add_model_arguments, load_detector_from_args
from featherface.detection import Detection
from featherface.errors import ImageError
from featherface.io import read_image_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", help="input image file")
    p.add_argument("--out", required=True, metavar="PATH", help="output image (format from the extension)")
    p.add_argument("--method", choices=("gaussian", "pixelate"), default="gaussian", help="default gaussian")
    p.add_argument("--margin", type=float, default=0.2, metavar="F",
                   help="grow each box by F times its size on every side (default 0.2)")
    p.add_argument("--blocks", type=int, default=10, metavar="N",
                   help="pixelate: blocks across the longer side of a region (default 10)")
    add_model_arguments(p)
    return p.parse_args(argv)


def face_region(face: Detection, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer ``(x1, y1, x2, y2)`` covering the padded box (rounded outwards, clipped to the image)."""
    x1, y1, x2, y2 = face.box
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    return (
        max(0, math.floor(x1 - dx)),
        max(0, math.floor(y1 - dy)),
        min(width, math.ceil(x2 + dx)),
        min(height, math.ceil(y2 + dy)),
    )


def gaussian_blur(roi: np.ndarray) -> np.ndarray:
    """Strong Gaussian blur whose kernel scales with the region (about half its shorter side)."""
    k = max(3, (min(roi.shape[:2]) // 2) | 1)  # odd kernel size
    return cv2.GaussianBlur(roi, (k, k), 0, borderType=cv2.BORDER_REPLICATE)


def pixelate(roi: np.ndarray, blocks: int) -> np.ndarray:
    """Average over about ``blocks`` cells along the longer side, then upscale without smoothing."""
    h, w = roi.shape[:2]
    scale = blocks / max(h, w)
    small = cv2.resize(roi, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def anonymise(image: np.ndarray, regions: list[tuple[int, int, int, int]], method: str, blocks: int) -> np.ndarray:
    """A copy of ``image`` with every region blurred or pixelated; pixels outside are untouched."""
    out = image.copy()
    for x1, y1, x2, y2 in regions:
        if x2 <= x1 or y2 <= y1:
            continue
        roi = out[y1:y2, x1:x2]  # overlapping regions are processed again, which only blurs more
        out[y1:y2, x1:x2] = gaussian_blur(roi) if method == "gaussian" else pixelate(roi, blocks)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.margin < 0 or args.blocks < 1:
        print("error: --margin must be >= 0 and --blocks >= 1", file=sys.stderr)
        return 2
    try:
        detector = load_detector_from_args(args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    try:
        image = read_image_file(args.image)  # BGR uint8
    except (ImageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    height, width = image.shape[:2]
    faces = detector.detect(image, color="bgr")
    regions = [face_region(f, args.margin, width, height) for f in faces]
    for i, (face, region) in enumerate(zip(faces, regions, strict=True), 1):
        print(f"face {i}: score={face.score:.3f} region=[{region[0]}, {region[1]}, {region[2]}, {region[3]}]")
    result = anonymise(image, regions, args.method, args.blocks)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok, encoded = cv2.imencode(out.suffix or ".png", result)
    except cv2.error:
        ok = False
    if not ok:
        print(f"error: cannot encode {out} (use .png, .jpg, ...)", file=sys.stderr)
        return 1
    out.write_bytes(encoded.tobytes())
    print(f"{len(regions)} face region(s) anonymised with {args.method}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
