"""``featherface detect``: faces in image files and folders, as text, JSON lines or annotated copies."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from featherface.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CLIError, print_error
from featherface.cli._options import add_model_arguments, load_detector_from_args, positive_int

__all__ = ["IMAGE_EXTENSIONS", "register", "expand_inputs"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""File suffixes (case-insensitive) picked up when a directory is given to ``featherface detect``."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("detect", help="detect faces in images and folders",
                       description="Detect faces in image files and folders. Prints one line per image and one "
                                   "per face, or JSON lines with --json; --save-dir writes annotated copies.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files and/or folders (folders: every jpg/jpeg/png/bmp/webp/tif/tiff inside)")
    p.add_argument("--recursive", "-r", action="store_true", help="also walk the sub-folders of folders")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object per image: {"image", "width", "height", "faces"}')
    p.add_argument("--save-dir", metavar="DIR", default=None,
                   help="write annotated copies as DIR/<stem>.jpg (a suffix _1, _2... avoids clashes)")
    p.add_argument("--batch-size", metavar="B", type=int, default=1,
                   help="run up to B images of the same network-input size per network call (default 1)")
    p.add_argument("--workers", metavar="W", type=int, default=0,
                   help="decode and resize images in W worker processes (default 0: in this process)")
    add_model_arguments(p)
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default=None,
                   help="inference engine (default torch); onnxruntime runs on the CPU and needs the onnx "
                        "extra: pip install \"featherface[onnx]\"")
    p.add_argument("--threads", metavar="N", type=positive_int, default=None,
                   help="CPU threads for inference: torch's (process-wide) or ONNX Runtime's intra-op threads "
                        "(load_model's num_threads; default: leave the current setting)")
    p.set_defaults(func=_cmd_detect)


def expand_inputs(inputs: Iterable[str], *, recursive: bool = False) -> list[Path]:
    """Files given explicitly (any suffix) and the image files inside folders, in a stable order.

    Raises :class:`featherface.cli.CLIError` (exit 2) for a URL (not fetched:
    :func:`featherface.io.reject_url`), a path that does not exist, or when no image is found.
    """
    from featherface.errors import ImageError
    from featherface.io import reject_url

    inputs = list(inputs)
    found: list[Path] = []
    seen: set[Path] = set()
    hint = ""
    empty: list[str] = []
    for text in inputs:
        try:
            reject_url(text)
        except ImageError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
        path = Path(text)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.iterdir()
            files = sorted(
                (f for f in walker if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()),
                key=lambda f: f.relative_to(path).parts,
            )
            if not files and not recursive and any(d.is_dir() for d in path.iterdir()):
                hint = " (sub-folders are searched only with --recursive)"
            if not files:
                empty.append(text)
        elif path.exists():
            files = [path]
        else:
            raise CLIError(f"no such file or directory: {text}", EXIT_USAGE)
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    if not found:
        raise CLIError(f"no image found in {', '.join(inputs)}{hint}", EXIT_USAGE)
    for text in empty:
        logger.warning("featherface: no image files in %s%s", text, hint)
    return found


def _unique_output(save_dir: Path, stem: str, used: set[str]) -> Path:
    name, k = f"{stem}.jpg", 0
    while name.lower() in used:
        k += 1
        name = f"{stem}_{k}.jpg"
    used.add(name.lower())
    return save_dir / name


def _write_jpeg(path: Path, bgr: Any) -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"cannot encode {path} as JPEG")
    path.write_bytes(buf.tobytes())  # works for non-ASCII paths, unlike cv2.imwrite on Windows


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _cmd_detect(args: argparse.Namespace) -> int:
    from featherface._stream import detect_files
    from featherface._visualize import draw
    from featherface.io import read_image_file

    if args.batch_size < 1 or args.workers < 0:
        raise CLIError("--batch-size must be >= 1 and --workers >= 0", EXIT_USAGE)
    paths = expand_inputs(args.inputs, recursive=args.recursive)
    save_dir = Path(args.save_dir) if args.save_dir else None
    if save_dir is not None:
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"--save-dir {save_dir}: cannot create the folder ({exc.strerror or exc})") from None
    det = load_detector_from_args(args)
    used: set[str] = set()
    failures = 0
    progress = sys.stderr if sys.stderr.isatty() else None  # "N/total images, R images/s"
    for path, faces, size in detect_files(det.pipeline, paths, options=det.options, batch_size=args.batch_size,
                                          workers=args.workers, progress=progress):
        if isinstance(faces, Exception):  # ImageError (undecodable...), above max_input_pixels
            failures += 1
            print_error(f"{faces}" if str(path) in str(faces) else f"{path}: {faces}")
            continue
        assert size is not None
        height, width = size
        if args.json:
            record = {"image": str(path), "width": width, "height": height, "faces": [f.to_dict() for f in faces]}
            print(json.dumps(record), flush=True)
        else:
            print(f"{path}: {_plural(len(faces), 'face')}")
            for f in faces:
                x1, y1, x2, y2 = f.box
                print(f"  box=({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) score={f.score:.3f}")
        if save_dir is not None:
            out = _unique_output(save_dir, path.stem, used)
            try:
                bgr = read_image_file(path)
                _write_jpeg(out, draw(bgr, faces, color="bgr"))
            except (ValueError, OSError) as exc:
                failures += 1
                print_error(f"cannot write {out}: {exc}")
                continue
            logger.info("featherface: wrote %s", out)
            if not args.json:
                print(f"  saved: {out}")
    if failures:
        print_error(f"{failures} of {_plural(len(paths), 'image')} failed")
        return EXIT_FAILURE
    return EXIT_OK
