"""Flags shared by every command that loads a detector, and the detector they describe.

:func:`add_model_arguments` adds ``--model/--weights/--random-weights/--device`` and the detection
options; :func:`load_detector_from_args` turns the parsed flags into a
:class:`featherface.FaceDetector`. The examples in ``examples/`` use the same two functions.

The detection-option flags are generated from :class:`featherface.DetectorOptions`: each flag is
named after its field (``score_threshold`` -> ``--score-threshold``) and its help shows the field's
default, so the command line and the library cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featherface.cli import EXIT_USAGE, CLIError, error_message, exit_code

if TYPE_CHECKING:
    from featherface import DetectorOptions, FaceDetector

__all__ = [
    "DETECTION_FLAGS",
    "positive_int",
    "add_detection_option_arguments",
    "add_model_arguments",
    "detector_options_from_args",
    "detector_options",
    "load_detector_from_args",
]

logger = logging.getLogger(__name__)


def _parse_input_size(text: str) -> int | tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW (e.g. 640 or 480x640), got {text!r}") from None


_NO_LIMIT = "none"
"""``--max-size none``: the value that turns the cap off (``max_size=None``)."""


def _size_or_none(text: str) -> int | str:
    if text.strip().lower() == _NO_LIMIT:
        return _NO_LIMIT
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'none', got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1 (anything else is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _existing_path(text: str) -> str:
    if not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"no such file or directory: {text}")
    return text


DETECTION_FLAGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "score_threshold": ("F", float, "keep faces scoring above this"),
    "iou_threshold": ("F", float, "NMS IoU threshold"),
    "pre_nms_top_k": ("N", int, "best N candidates per image kept before NMS"),
    "max_detections": ("N", int, "at most N faces per image, best first"),
    "input_size": ("N|HxW", _parse_input_size,
                   "scale the image so its longer side is N (up or down), or resize to exactly HxW"),
    "max_size": ("N|none", _size_or_none,
                 "downscale images whose longer side exceeds N ('none': original size, as WIDER FACE evaluates)"),
    "min_face_size": ("PX", float,
                      "smallest face (px high in the image) to find: scales the image for it, ignoring --max-size"),
    "max_input_pixels": ("N", int, "refuse network inputs above N pixels (memory cap; --max-size downscales instead)"),
}
"""The :class:`featherface.DetectorOptions` fields that have a flag: metavar, parser, help (the
default is appended from the dataclass)."""

_NONE_MEANS = {"pre_nms_top_k": "all", "max_detections": "all", "input_size": "original size", "max_size": "no limit"}

_MODEL_FLAGS = ("score_threshold", "iou_threshold", "max_detections", "input_size", "max_size", "min_face_size",
                "max_input_pixels")


def add_detection_option_arguments(group: Any, names: Iterable[str] = _MODEL_FLAGS) -> None:
    """Add the flags of the :class:`featherface.DetectorOptions` fields ``names`` to ``group`` (a parser
    or argument group), each defaulting to ``None`` (not given) and showing the field's default."""
    from featherface import DetectorOptions

    defaults = {f.name: f.default for f in dataclasses.fields(DetectorOptions)}
    for name in names:
        metavar, parse, text = DETECTION_FLAGS[name]
        default = defaults[name]
        shown = f"(default: {_NONE_MEANS.get(name, 'none')})" if default is None else f"(default {default})"
        group.add_argument("--" + name.replace("_", "-"), metavar=metavar, type=parse, default=None,
                           help=f"{text} {shown}")


def add_model_arguments(parser: argparse.ArgumentParser, *, detection_options: bool = True) -> None:
    """Add ``--model/--weights/--random-weights/--device`` (and the detection-option flags) to ``parser``."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", metavar="NAME", default=None,
                   help="registered model name (see 'featherface models'); default v2_ultra, or the "
                        "model described by --weights' config.json")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="PATH", type=_existing_path, default=None,
                     help="your own weights: a folder with config.json + model.safetensors, or a "
                          ".safetensors file (with --model)")
    src.add_argument("--random-weights", action="store_true",
                     help="randomly initialised network (seeded), for testing only: detections are meaningless")
    g.add_argument("--device", metavar="DEV", default=None,
                   help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    if detection_options:
        add_detection_option_arguments(parser.add_argument_group("detection options"))


def detector_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`featherface.DetectorOptions` given on the command line (only those set)."""
    given = {n: getattr(args, n) for n in DETECTION_FLAGS if getattr(args, n, None) is not None}
    return {n: None if v == _NO_LIMIT else v for n, v in given.items()}


def detector_options(**values: Any) -> DetectorOptions:
    """``DetectorOptions(**values)``; a value the library refuses (``TypeError``/``ValueError``, the
    message names the option) is a usage error: :class:`featherface.cli.CLIError` with exit code 2."""
    from featherface import DetectorOptions

    try:
        return DetectorOptions(**values)
    except (TypeError, ValueError) as exc:
        raise CLIError(error_message(exc), EXIT_USAGE) from None


_FLAG_HINT = ("; on the command line: --weights PATH (a folder with config.json + model.safetensors) "
              "or --random-weights (testing only)")


def load_detector_from_args(args: argparse.Namespace, **extra_options: Any) -> FaceDetector:
    """Build the detector described by :func:`add_model_arguments` flags (``args.backend`` and
    ``args.threads``, load_model's ``num_threads``, too, if set).

    Nothing is checked twice: the library checks the model name, device, weights and option values.
    Its errors are re-raised as :class:`featherface.cli.CLIError` with the exit code that
    :func:`featherface.cli.main` gives them (:func:`featherface.cli.exit_code`: 2 for an unknown model,
    a bad device or option value, 1 for weights that are missing or do not load), so that a script
    catches one type; a model whose weights are not installed gets the flags to use instead.
    """
    from featherface import load_model
    from featherface.errors import WeightsNotInstalledError

    options = detector_options(**{**detector_options_from_args(args), **extra_options})
    engine: dict[str, Any] = {}
    backend = getattr(args, "backend", None)
    if backend is not None:
        engine["backend"] = backend
    device = getattr(args, "device", None)
    if backend == "onnxruntime" and device is not None and str(device).strip().lower() != "cpu":
        raise CLIError(f"--backend onnxruntime runs on the CPU only; got --device {device} "
                       "(pass --device cpu, or --backend torch for a GPU)", EXIT_USAGE)
    threads = getattr(args, "threads", None)
    if threads is not None:
        engine["num_threads"] = threads
    try:
        if getattr(args, "random_weights", False):
            import torch

            with torch.random.fork_rng(devices=[]):  # reproducible without touching the caller's RNG
                torch.manual_seed(0)
                det = load_model(args.model, device=args.device, pretrained=False, **engine,
                                 options=options)
        else:
            det = load_model(args.model, device=args.device, weights=getattr(args, "weights", None), **engine,
                             options=options)
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        message = error_message(exc)
        if isinstance(exc, WeightsNotInstalledError):  # its message names the Python arguments
            message += _FLAG_HINT
        raise CLIError(message, code) from exc
    logger.info("featherface: %r", det)
    return det
