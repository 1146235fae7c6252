"""Shared set-up of the ONNX Runtime benchmark scripts (profile_onnxruntime.py, onnxruntime_variants.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import featherface
from featherface.cli._bench import parse_size
from featherface.io import read_image_file
from featherface.pipeline import make_batch, preprocess

IMAGE = Path(__file__).resolve().parents[1] / "examples" / "images" / "astronaut.png"


def add_detector_arguments(ap: argparse.ArgumentParser, *, runs: int, warmup: int) -> None:
    """``--model --weights --size --threads --runs --warmup``."""
    ap.add_argument("--model", default="v2_ultra")
    ap.add_argument("--weights", default=None, help="weights folder/file (default: the model's published weights)")
    ap.add_argument("--size", type=parse_size, default=(640, 480), help="network input WxH (default 640x480)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--warmup", type=int, default=warmup)


def load_ort_detector(args: argparse.Namespace) -> featherface.FaceDetector:
    """The detector ``load_model(args.model, backend="onnxruntime", num_threads=args.threads)`` builds."""
    kwargs: dict[str, Any] = {"weights": args.weights} if args.weights else {}
    return featherface.load_model(args.model, device="cpu", backend="onnxruntime", num_threads=args.threads, **kwargs)


def prepared_input(det: featherface.FaceDetector, path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """The network input ``[1, 3, H, W]`` the detector makes of image ``path`` resized to ``size = (W, H)``."""
    frame = cv2.resize(read_image_file(path), size, interpolation=cv2.INTER_AREA)
    prepared = preprocess(frame, det.options, color="bgr")
    return make_batch([prepared.image], det.config.mean_bgr, det.runner.batch_spec).numpy()
