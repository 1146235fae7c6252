"""Align every detected face onto the 5-point ArcFace template and save the crops.

    python examples/align_faces.py examples/images/astronaut.png --out-dir aligned/
    python examples/align_faces.py group.jpg --out-dir aligned/ --size 224

The packaged ``v2_ultra`` weights are used by default (``featherface.load_model()``); ``--weights
FOLDER`` loads your own (``config.json`` + ``model.safetensors``), ``--model v1`` the installed
reference V1.

Each face found above ``--score-threshold`` is warped by ``featherface.align_faces`` with a
similarity transform (rotation, uniform scale, translation) fitted by least squares to its five
landmarks, so that they land on the ArcFace template of a ``--size`` x ``--size`` crop (112 by
default: the input of most face-recognition models). The crops are written as
``OUT_DIR/<image stem>_face<I>.png`` (I from 1, by descending score), and one line per face is
printed: ``face I: score=S -> PATH``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

import featherface
from featherface.cli import CLIError, add_model_arguments, load_detector_from_args
from featherface.errors import ImageError
from featherface.io import read_image_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", help="input image file")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="folder for the aligned crops (created)")
    p.add_argument("--size", type=int, default=112, metavar="N", help="crop size in pixels, N x N (default 112)")
    add_model_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.size < 1:
        print("error: --size must be >= 1", file=sys.stderr)
        return 2
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
    crops = featherface.align_faces(image, faces, args.size, color="bgr")  # BGR in, BGR out
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(args.image).stem
    for i, (face, crop) in enumerate(zip(faces, crops, strict=True), 1):
        path = out_dir / f"{stem}_face{i}.png"
        ok, encoded = cv2.imencode(".png", crop)
        if not ok:
            print(f"error: cannot encode {path}", file=sys.stderr)
            return 1
        path.write_bytes(encoded.tobytes())
        print(f"face {i}: score={face.score:.3f} -> {path}")
    print(f"{len(faces)} face(s) aligned to {args.size}x{args.size}; written to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
