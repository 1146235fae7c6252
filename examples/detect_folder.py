"""Detect faces in every image of a folder and print one JSON line per image.

    python examples/detect_folder.py photos/ --batch-size 8 > faces.jsonl

The packaged ``v2_ultra`` weights are used by default; ``--weights FOLDER`` loads your own
(``config.json`` + ``model.safetensors``), ``--model v1`` the installed reference V1.

Images are decoded here and sent to ``FaceDetector.detect_batch`` in chunks of ``--batch-size``
(images of equal size share one network call; the results equal one ``detect`` per image). Each
line is ``{"image": path, "width": W, "height": H, "faces": [Detection.to_dict(), ...]}``.
Unreadable files are reported on stderr and skipped (exit code 1 at the end).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from featherface.cli import IMAGE_EXTENSIONS, CLIError, add_model_arguments, load_detector_from_args
from featherface.errors import ImageError
from featherface.io import read_image_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of images (jpg, jpeg, png, bmp, webp, tif, tiff)")
    p.add_argument("--recursive", action="store_true", help="include sub-folders")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per detect_batch call (default 8)")
    add_model_arguments(p)
    return p.parse_args(argv)


def list_images(folder: Path, recursive: bool) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(f for f in files if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)


def chunks(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: not a folder: {folder}", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    try:
        detector = load_detector_from_args(args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    paths = list_images(folder, args.recursive)
    failures = 0
    for chunk in chunks(paths, args.batch_size):
        loaded: list[tuple[Path, np.ndarray]] = []
        for path in chunk:
            try:
                loaded.append((path, read_image_file(path)))  # BGR uint8
            except (ImageError, OSError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                failures += 1
        results = detector.detect_batch([img for _, img in loaded], color="bgr")
        for (path, img), faces in zip(loaded, results, strict=True):
            record = {"image": str(path), "width": img.shape[1], "height": img.shape[0],
                      "faces": [f.to_dict() for f in faces]}
            print(json.dumps(record), flush=True)
    print(f"{len(paths) - failures} image(s) processed, {failures} failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
