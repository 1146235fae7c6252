"""Detection types: :class:`Detection` (one face, original-image pixels), array helpers, and the
network's raw output :data:`RawOutputs` (one name for it, wherever it is passed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

if TYPE_CHECKING:  # torch only for the annotation: importing this module stays cheap
    import torch

__all__ = ["Detection", "detections_to_arrays", "LANDMARK_NAMES", "Point", "RawOutputs", "RAW_OUTPUT_NAMES"]

RawOutputs: TypeAlias = "tuple[torch.Tensor, torch.Tensor, torch.Tensor]"
"""A network's raw outputs ``(loc [B, N, 4], logits [B, N, 2], landmarks [B, N, 10])``, rows in prior
order: box offsets, face/background logits and landmark offsets against the priors (not decoded)."""

RAW_OUTPUT_NAMES: tuple[str, str, str] = ("loc", "logits", "landmarks")
"""The names of :data:`RawOutputs`' tensors (the outputs of an exported raw ONNX graph)."""

Point = tuple[float, float]

LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Landmark order. "left"/"right" are in image coordinates: the left eye has the smaller x on a
frontal, upright face (it is the subject's right eye)."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected face, in original-image pixels.

    Attributes:
        box: ``(x1, y1, x2, y2)``, continuous pixel coordinates (the top-left image corner is
            ``(0, 0)``, the bottom-right is ``(W, H)``), clipped to the image.
        score: face confidence in ``[0, 1]``.
        landmarks: five ``(x, y)`` points in the order of :data:`LANDMARK_NAMES` (not clipped: a
            landmark may lie slightly outside the image for faces cut by the border).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[Point, Point, Point, Point, Point]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def box_xywh(self) -> tuple[float, float, float, float]:
        """``(x, y, width, height)`` of the box."""
        return (self.box[0], self.box[1], self.width, self.height)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"box": [x1, y1, x2, y2], "score": s, "landmarks": [[x, y] * 5]}``."""
        return {
            "box": list(self.box),
            "score": self.score,
            "landmarks": [list(p) for p in self.landmarks],
        }


def detections_to_arrays(dets: Sequence[Detection]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes[N, 4], scores[N], landmarks[N, 5, 2])`` float32 arrays for a list of detections."""
    n = len(dets)
    boxes = np.array([d.box for d in dets], dtype=np.float32).reshape(n, 4)
    scores = np.array([d.score for d in dets], dtype=np.float32).reshape(n)
    landmarks = np.array([d.landmarks for d in dets], dtype=np.float32).reshape(n, 5, 2)
    return boxes, scores, landmarks
