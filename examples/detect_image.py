"""Detect faces in one image and print them; optionally save an annotated copy.

    python examples/detect_image.py examples/images/astronaut.png --out faces.jpg

The packaged ``v2_ultra`` weights are used by default; ``--weights FOLDER`` loads your own
(``config.json`` + ``model.safetensors``), ``--model v1`` the installed reference V1.

Prints one line per face (box, score) followed by its five landmarks, named in the order of
``featherface.detection.LANDMARK_NAMES``. Use ``--random-weights`` only to try the pipeline: a randomly
initialised network finds nothing meaningful.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

import featherface
from featherface.cli import CLIError, add_model_arguments, load_detector_from_args
from featherface.detection import LANDMARK_NAMES
from featherface.errors import ImageError
from featherface.io import read_image_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", help="an image file (jpg, png, ...)")
    p.add_argument("--out", metavar="PATH", default=None, help="write an annotated copy here (e.g. faces.jpg)")
    add_model_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        detector = load_detector_from_args(args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    try:
        image = read_image_file(args.image)  # BGR uint8, EXIF orientation applied
    except (ImageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    faces = detector.detect(image, color="bgr")
    height, width = image.shape[:2]
    print(f"{args.image}: {width}x{height}, {len(faces)} face(s) with {detector!r}")
    for i, face in enumerate(faces, 1):
        x1, y1, x2, y2 = face.box
        print(f"face {i}: box=({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) score={face.score:.3f}")
        for name, (x, y) in zip(LANDMARK_NAMES, face.landmarks, strict=True):
            print(f"    {name:<12} ({x:.1f}, {y:.1f})")
    if args.out:
        annotated = featherface.draw(image, faces, color="bgr")  # same colour order as the input: BGR
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        try:
            ok, encoded = cv2.imencode(Path(args.out).suffix or ".jpg", annotated)
        except cv2.error:  # unknown file extension
            ok = False
        if ok:
            Path(args.out).write_bytes(encoded.tobytes())
        else:
            print(f"error: cannot write {args.out}", file=sys.stderr)
            return 1
        print(f"annotated image written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
