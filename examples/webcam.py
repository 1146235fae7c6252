"""Detect faces in a live camera stream or a video file, draw them, optionally record the result.

    python examples/webcam.py                      # camera 0, window
    python examples/webcam.py --source clip.mp4 --output out.avi --no-display

The packaged ``v2_ultra`` weights are used by default; ``--weights FOLDER`` loads your own
(``config.json`` + ``model.safetensors``), ``--model v1`` the installed reference V1.

Frames from ``cv2.VideoCapture`` are BGR, so they are passed with ``color="bgr"`` and drawn in BGR.
Press ``q`` or Esc in the window to stop. ``--no-display`` runs headless (no window; needed with
``opencv-python-headless``). At the end the mean latency per frame (detection only) is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

import featherface
from featherface.cli import CLIError, add_model_arguments, load_detector_from_args

FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".mkv": "MJPG"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="0", help="camera index (0, 1, ...) or a video file (default 0)")
    p.add_argument("--output", metavar="PATH", default=None,
                   help="write the annotated video here (.avi: MJPG, .mp4: mp4v)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--no-display", action="store_true", help="do not open a window (headless)")
    add_model_arguments(p)
    return p.parse_args(argv)


def open_source(source: str) -> cv2.VideoCapture:
    """A camera for an integer ``source``, otherwise a video file."""
    if source.isdigit():
        return cv2.VideoCapture(int(source))
    if not Path(source).is_file():
        raise FileNotFoundError(f"video file not found: {source}")
    return cv2.VideoCapture(source)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        detector = load_detector_from_args(args)
        capture = open_source(args.source)
    except (CLIError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "code", 1)
    if not capture.isOpened():
        print(f"error: cannot open video source {args.source!r}", file=sys.stderr)
        return 1
    writer: cv2.VideoWriter | None = None
    frames, seconds, total_faces = 0, 0.0, 0
    try:
        while args.max_frames is None or frames < args.max_frames:
            ok, frame = capture.read()
            if not ok:
                break  # end of file or camera closed
            start = time.perf_counter()
            faces = detector.detect(frame, color="bgr")
            seconds += time.perf_counter() - start
            frames += 1
            total_faces += len(faces)
            annotated = featherface.draw(frame, faces, color="bgr")  # BGR in, BGR out
            if args.output:
                if writer is None:
                    h, w = annotated.shape[:2]
                    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
                    fourcc = cv2.VideoWriter.fourcc(*FOURCC.get(Path(args.output).suffix.lower(), "MJPG"))
                    writer = cv2.VideoWriter(args.output, fourcc, fps, (w, h))
                    if not writer.isOpened():
                        print(f"error: cannot write video {args.output}", file=sys.stderr)
                        return 1
                writer.write(annotated)
            if not args.no_display:
                try:
                    cv2.imshow("featherface", annotated)
                    key = cv2.waitKey(1) & 0xFF
                except cv2.error:
                    print("error: this OpenCV build cannot open windows; use --no-display", file=sys.stderr)
                    return 1
                if key in (ord("q"), 27):
                    break
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if not args.no_display:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
    if frames == 0:
        print(f"error: no frame could be read from {args.source!r}", file=sys.stderr)
        return 1
    print(f"{frames} frame(s), {total_faces} face(s), detection {1000 * seconds / frames:.1f} ms/frame on average")
    if args.output:
        print(f"annotated video written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
