"""Detection options: :class:`DetectorOptions`, the one options type of every stage and entry point.

``load_model(**options)``, ``FaceDetector.detect(**options)``, ``detect_batch``, ``detect_stream``, the
``featherface`` command line (whose flags and help text are generated from these fields), the WIDER
FACE evaluation protocol and the ONNX detection graph all take a :class:`DetectorOptions`; the default
of every option is written once, below.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DetectorOptions", "MIN_FACE_NETWORK_PX", "OPTION_TYPES"]

#: Face height in network-input pixels that ``min_face_size`` maps to. The smallest prior of both
#: networks is 16 px at stride 8 (RetinaFace's anchors, which FeatherFace keeps); a 20 px face overlaps
#: it with IoU 0.64 and is found reliably, while faces much below 16 px are mostly missed.
MIN_FACE_NETWORK_PX = 20.0


def _is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


OPTION_TYPES: dict[str, str] = {
    "score_threshold": "a number in [0, 1]",
    "iou_threshold": "a number in [0, 1]",
    "pre_nms_top_k": "a positive int or None",
    "max_detections": "a positive int or None",
    "input_size": "None, a positive int or (height, width) of positive ints",
    "max_size": "a positive int or None",
    "min_face_size": "a positive number or None",
    "max_input_pixels": "a positive int",
    "legacy_nms": "True or False",
}
"""What each :class:`DetectorOptions` field takes, as error messages say it."""


def _option_error(kind: type[Exception], name: str, value: Any) -> Exception:
    """``kind("detector option NAME takes WHAT; got VALUE (TYPE)")``, with a hint for strings."""
    hint = ""
    if isinstance(value, str):
        hint = "; pass the value itself, not a string (e.g. float(text) or int(text) first)"
    return kind(f"detector option {name} takes {OPTION_TYPES[name]}; got {value!r} ({type(value).__name__}){hint}")


def _validate_option(name: str, value: Any) -> Any:
    """Check one option's type (``TypeError``) and value (``ValueError``); return it normalised
    (NumPy scalars to Python numbers, a list ``input_size`` to a tuple)."""
    if name in ("score_threshold", "iou_threshold"):
        if not _is_real(value):
            raise _option_error(TypeError, name, value)
        if not 0.0 <= float(value) <= 1.0:
            raise _option_error(ValueError, name, value)
        return float(value)
    if name in ("pre_nms_top_k", "max_detections", "max_size", "max_input_pixels"):
        if value is None and name != "max_input_pixels":
            return None
        if not _is_int(value):
            raise _option_error(TypeError, name, value)
        if value <= 0:
            raise _option_error(ValueError, name, value)
        return int(value)
    if name == "min_face_size":
        if value is None:
            return None
        if not _is_real(value) or not math.isfinite(float(value)):
            raise _option_error(TypeError, name, value)
        if value <= 0:
            raise _option_error(ValueError, name, value)
        return float(value)
    if name == "input_size":
        if value is None:
            return None
        if _is_int(value):
            if value <= 0:
                raise _option_error(ValueError, name, value)
            return int(value)
        if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(_is_int(v) for v in value):
            raise _option_error(TypeError, name, value)
        if not all(v > 0 for v in value):
            raise _option_error(ValueError, name, value)
        return (int(value[0]), int(value[1]))
    if name == "legacy_nms":
        if not isinstance(value, (bool, np.bool_)):
            raise _option_error(TypeError, name, value)
        return bool(value)
    raise TypeError(f"unknown detector option {name!r}; valid options: {sorted(OPTION_TYPES)}")


@dataclass(frozen=True)
class DetectorOptions:
    """Detection options; the same names are accepted by ``load_model`` and every ``detect`` call.

    Each option is checked when the options are made: a value of the wrong type raises ``TypeError``
    and a value out of range ``ValueError``, both naming the option, the value given and what the
    option takes (:data:`OPTION_TYPES`). NumPy scalars are accepted and stored as Python numbers.

    Attributes:
        score_threshold: keep faces with score strictly above this (default 0.5).
        iou_threshold: NMS IoU threshold (default 0.4).
        pre_nms_top_k: best candidates kept before NMS (``None``: all).
        max_detections: faces returned at most, best first (``None``: all).
        input_size: ``None`` runs at the original size (capped by ``max_size``); an ``int`` scales
            the image (up or down, aspect kept) so its longer side equals it; ``(height, width)``
            resizes to exactly that.
        max_size: if the (scaled) longer side exceeds this, downscale to it (aspect kept). Default
            1024: above about 1,300 px of network input the packaged weights put false boxes on
            plain background, and on phone-size photos (4000 px) a 1024 px input found about as
            many faces of 40 px and more as 1280 or 1600 px with fewer false boxes
            (``benchmarks/size_policy.py``, docs/concepts.md). ``None``: no cap (the WIDER FACE
            protocol runs every image at its original size).
        min_face_size: the smallest face, in pixels of the original image, that you need found
            (its box height). The image is scaled so that such a face is
            :data:`MIN_FACE_NETWORK_PX` pixels in the network input (up or down); ``max_size`` is
            then not applied (``max_input_pixels`` still is). Ignored when ``input_size`` is set.
        max_input_pixels: refuse network inputs above this many pixels instead of exhausting memory
            (set ``max_size`` to process huge images at reduced resolution).
        legacy_nms: the "+1 pixel" NMS convention of the reference evaluation code.
    """

    score_threshold: float = 0.5
    iou_threshold: float = 0.4
    pre_nms_top_k: int | None = 5000
    max_detections: int | None = 750
    input_size: int | tuple[int, int] | None = None
    max_size: int | None = 1024
    min_face_size: float | None = None
    max_input_pixels: int = 40_000_000
    legacy_nms: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _validate_option(f.name, getattr(self, f.name)))

    def updated(self, **overrides: Any) -> DetectorOptions:
        """Copy with some options changed; unknown names raise ``TypeError`` listing the valid ones."""
        if not overrides:
            return self
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise TypeError(f"unknown detector option(s) {unknown}; valid options: {sorted(valid)}")
        return dataclasses.replace(self, **overrides)

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input ``(h, w)`` for an original image of ``height x width`` pixels."""
        h, w = height, width
        s = self.input_size
        if isinstance(s, tuple):
            h, w = s
        elif isinstance(s, int):
            f = s / max(h, w)
            h, w = max(1, round(h * f)), max(1, round(w * f))
        elif self.min_face_size is not None:
            f = MIN_FACE_NETWORK_PX / self.min_face_size
            h, w = max(1, round(h * f)), max(1, round(w * f))
        if self.max_size is not None and max(h, w) > self.max_size and (s is not None or self.min_face_size is None):
            f = self.max_size / max(h, w)
            h, w = max(1, round(h * f)), max(1, round(w * f))
        if h * w > self.max_input_pixels:
            raise ValueError(
                f"image of {width}x{height} pixels would need a {w}x{h} network input, above the "
                f"max_input_pixels={self.max_input_pixels} memory cap; detect at reduced resolution with "
                f"max_size=N (command line: --max-size N; e.g. N={int(math.sqrt(self.max_input_pixels))}), or "
                f"raise the cap with max_input_pixels=N (command line: --max-input-pixels N)"
            )
        return h, w
