"""Training augmentation: the RetinaFace recipe that the FeatherFace authors train with.

It follows ``data/data_augment.py`` of the RetinaFace PyTorch implementation (github
biubug6/Pytorch_Retinaface: ``preproc``, ``_crop``, ``_distort``, ``_pad_to_square``, ``_mirror``,
``_resize_subtract_mean``), in the version the FeatherFace repository (github fokouarnaud/FeatherFace)
trains with (crop scales from a fixed list, no minimum face size). Each function below states the rule it
implements; "reference" means that code.

Pure NumPy + OpenCV. Every random draw comes from the :class:`numpy.random.Generator` passed in, so a
transform is a deterministic function of its inputs and the generator's state; nothing here touches a
global random state. No function modifies the arrays it is given: results are always new arrays.

Conventions
-----------
* Images are ``uint8`` BGR, ``H x W x 3`` (OpenCV order), until the final float conversion.
* Coordinates are continuous pixel coordinates: pixel ``(row i, column j)`` covers ``[j, j+1) x [i, i+1)``,
  so an image of width ``W`` spans ``x`` in ``[0, W]``. There is no "+1" width convention anywhere.
* ``boxes`` are ``float32 [N, 4]`` ``(x1, y1, x2, y2)``; ``landmarks`` are ``float32 [N, 5, 2]`` ``(x, y)``
  in the order left eye, right eye, nose, left mouth corner, right mouth corner ("left" = smaller ``x`` in
  the image for a frontal face); ``has_landmarks`` is ``bool [N]``; landmarks of faces without landmark
  annotations are zeros.
* Target rows (the output of :class:`TrainTransform` / :class:`EvalTransform`, read by the loss):
  ``float32 [M, 15]`` -- columns 0-3 the box ``x1, y1, x2, y2`` divided by the final (cropped or padded)
  image width/height, so in ``[0, 1]``; columns 4-13 the landmarks ``x0, y0, ..., x4, y4`` normalised the
  same way (zeros when absent); column 14 the label, ``1.0`` for a face with landmarks, ``-1.0`` for a
  face without and ``0.0`` for an ignore region (:class:`TrainTransform`'s ``ignore``).

Pipeline of :class:`TrainTransform`, in the reference order: random square crop (:func:`random_crop`) ->
photometric distortion (:func:`photometric_distort`) -> pad to square, only if the crop failed
(:func:`pad_to_square`) -> horizontal mirror with p = 0.5 (:func:`mirror`) -> resize with a random
interpolation (:func:`resize`) -> float32, subtract the BGR mean, HWC -> CHW; targets normalised by the
width/height of the image just before the resize.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from featherface._models.config import ModelConfig
from featherface.pipeline import make_batch

__all__ = [
    "CROP_SCALES",
    "INTERPOLATIONS",
    "MEAN_BGR",
    "TARGET_DIM",
    "EvalTransform",
    "TrainTransform",
    "build_targets",
    "mirror",
    "normalise_to_image",
    "pad_to_square",
    "photometric_distort",
    "random_crop",
    "resize",
    "to_network_input",
]

logger = logging.getLogger(__name__)

#: Crop side as a fraction of the image's short side, drawn uniformly (reference ``_crop``).
CROP_SCALES: tuple[float, ...] = (0.3, 0.45, 0.6, 0.8, 1.0)
#: Mean colour subtracted from the network input, BGR order, no std division (the authors' ``rgb_mean``):
#: the default of :attr:`featherface._models.config.ModelConfig.mean_bgr`.
MEAN_BGR: tuple[float, float, float] = ModelConfig.mean_bgr
#: Interpolations :func:`resize` chooses from, uniformly (reference ``_resize_subtract_mean``).
INTERPOLATIONS: tuple[int, ...] = (
    cv2.INTER_LINEAR,
    cv2.INTER_CUBIC,
    cv2.INTER_AREA,
    cv2.INTER_NEAREST,
    cv2.INTER_LANCZOS4,
)
#: Width of a target row: 4 box + 10 landmark coordinates + 1 label.
TARGET_DIM = 15

_SWAP = np.array([1, 0, 2, 4, 3])  # mirror: left eye <-> right eye, left mouth <-> right mouth


# --------------------------------------------------------------------------------------------- checks


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 HxWx3 (BGR), got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: {image.shape}")
    return image


def _copy_annotations(
    boxes: np.ndarray, landmarks: np.ndarray, has_landmarks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float32/bool copies (never views of the caller's arrays)."""
    boxes = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    landmarks = np.array(landmarks, dtype=np.float32, copy=True).reshape(-1, 5, 2)
    has_landmarks = np.array(has_landmarks, dtype=bool, copy=True).reshape(-1)
    if not (len(boxes) == len(landmarks) == len(has_landmarks)):
        raise ValueError(
            f"boxes ({len(boxes)}), landmarks ({len(landmarks)}) and has_landmarks ({len(has_landmarks)}) "
            "must have the same length"
        )
    landmarks[~has_landmarks] = 0.0
    return boxes, landmarks, has_landmarks


# ----------------------------------------------------------------------------------------------- crop


def random_crop(
    image: np.ndarray,
    boxes: np.ndarray,
    landmarks: np.ndarray,
    has_landmarks: np.ndarray,
    rng: np.random.Generator,
    scales: Sequence[float] = CROP_SCALES,
    max_tries: int = 250,
    min_face: float = 0.0,
    *,
    out_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Random square crop, the first augmentation step (reference ``_crop``).

    Up to ``max_tries`` times: draw ``s`` uniformly from ``scales``, take a square of side
    ``int(s * min(W, H))`` at a uniformly random integer position inside the image (left in
    ``[0, W - side]``, top in ``[0, H - side]``), and accept it only if at least one GT box lies fully
    inside it (IoF = 1). In an accepted crop the GTs whose centres lie strictly inside are kept, their boxes
    are clipped to the crop and shifted into its frame; landmarks are shifted and clamped to
    ``[0, side]``. Faces whose clipped box is not larger than ``min_face`` (short side, measured at the
    training scale ``side -> out_size`` when ``out_size`` is given, else in crop pixels) are then dropped;
    ``min_face = 0`` (the authors' setting) keeps every face. A crop left with no face is rejected too.

    Args:
        image: ``uint8 [H, W, 3]``.
        boxes: ``[N, 4]`` pixels ``(x1, y1, x2, y2)``; landmarks ``[N, 5, 2]``; has_landmarks ``[N]``.
        rng: source of every random draw.

    Returns:
        ``(image, boxes, landmarks, has_landmarks, pad_needed)``. When all tries fail (always, for an image
        without faces) this is a copy of the inputs and ``pad_needed`` is ``True``: the caller pads the
        image to a square later (:func:`pad_to_square`). Landmarks of faces without landmarks stay zero.
    """
    image = _check_image(image)
    boxes, landmarks, has_landmarks = _copy_annotations(boxes, landmarks, has_landmarks)
    if max_tries < 0:
        raise ValueError(f"max_tries must be >= 0, got {max_tries}")
    scale_choices = np.asarray(scales, dtype=np.float64)
    if (
        scale_choices.ndim != 1
        or len(scale_choices) == 0
        or np.any(scale_choices <= 0)
        or np.any(scale_choices > 1)
    ):
        raise ValueError(f"scales must be a non-empty sequence of values in (0, 1], got {scales!r}")
    window = _draw_crop(image.shape[:2], boxes, rng, scale_choices, max_tries, min_face, out_size)
    if window is None:
        return image.copy(), boxes, landmarks, has_landmarks, True
    left, top, side, keep = window
    new_boxes, new_landmarks, new_has = _crop_annotations(boxes, landmarks, has_landmarks, left, top, side)
    crop = image[top : top + side, left : left + side].copy()
    return crop, new_boxes[keep], new_landmarks[keep], new_has[keep], False


def _inside_centres(boxes: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """``bool [N]``: box centres strictly inside the square window."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    lo = np.array([left, top], dtype=np.float32)
    return np.all((centres > lo) & (centres < lo + side), axis=1)


def _crop_annotations(
    boxes: np.ndarray, landmarks: np.ndarray, has_landmarks: np.ndarray, left: int, top: int, side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces whose centre lies in the window, clipped and shifted into its frame."""
    keep = _inside_centres(boxes, left, top, side)
    lo = np.array([left, top], dtype=np.float32)
    new_boxes = boxes[keep].copy()
    new_boxes[:, :2] = np.maximum(new_boxes[:, :2], lo) - lo
    new_boxes[:, 2:] = np.minimum(new_boxes[:, 2:], lo + side) - lo
    new_landmarks = np.clip(landmarks[keep] - lo, 0.0, float(side))
    new_has = has_landmarks[keep].copy()
    new_landmarks[~new_has] = 0.0
    return new_boxes, new_landmarks, new_has


def _draw_crop(
    shape: tuple[int, int],
    boxes: np.ndarray,
    rng: np.random.Generator,
    scale_choices: np.ndarray,
    max_tries: int,
    min_face: float,
    out_size: int | None,
) -> tuple[int, int, int, np.ndarray] | None:
    """The window of :func:`random_crop`: ``(left, top, side, keep)`` with ``keep`` ``bool [M]`` over the
    faces whose centre is inside (the ones large enough), or ``None`` when every try failed."""
    height, width = shape
    short = min(width, height)
    if len(boxes) == 0:
        return None
    for _ in range(max_tries):
        scale = float(scale_choices[rng.integers(len(scale_choices))])
        side = max(1, int(scale * short))
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        lo = np.array([left, top], dtype=np.float32)
        hi = lo + side
        inside = np.all(boxes[:, :2] >= lo, axis=1) & np.all(boxes[:, 2:] <= hi, axis=1)
        if not inside.any():
            continue
        keep = _inside_centres(boxes, left, top, side)
        if not keep.any():
            continue
        kept = boxes[keep]
        clipped = np.minimum(kept[:, 2:], hi) - np.maximum(kept[:, :2], lo)
        face_side = np.minimum(clipped[:, 0], clipped[:, 1])
        if out_size is not None:
            face_side = face_side * (out_size / side)
        big = face_side > min_face
        if not big.any():
            continue
        return left, top, side, big
    return None


def _background_window(
    shape: tuple[int, int], boxes: np.ndarray, rng: np.random.Generator, scales: tuple[float, float],
    tries: int = 30,
) -> tuple[int, int, int] | None:
    """A square ``(left, top, side)`` that overlaps none of ``boxes`` (faces and ignore regions), its side a
    fraction drawn uniformly from ``scales`` of the image's short side; ``None`` if ``tries`` draws fail."""
    height, width = shape
    short = min(width, height)
    for _ in range(tries):
        side = max(8, int(rng.uniform(*scales) * short))
        if side > min(width, height):
            return None
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        if len(boxes) == 0:
            return left, top, side
        apart = (
            (boxes[:, 2] <= left) | (boxes[:, 0] >= left + side) | (boxes[:, 3] <= top) | (boxes[:, 1] >= top + side)
        )
        if apart.all():
            return left, top, side
    return None


# ---------------------------------------------------------------------------------------- photometric


def _affine(channel: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``clip(channel * alpha + beta, 0, 255)`` truncated back to uint8 (the reference's ``_convert``)."""
    out = channel.astype(np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(out, 0.0, 255.0).astype(np.uint8)


def _brightness(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.integers(2):
        return _affine(image, beta=rng.uniform(-32.0, 32.0))
    return image


def _contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.integers(2):
        return _affine(image, alpha=rng.uniform(0.5, 1.5))
    return image


def _saturation_hue(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)  # uint8: H in [0, 180), S and V in [0, 255]
    if rng.integers(2):
        hsv[:, :, 1] = _affine(hsv[:, :, 1], alpha=rng.uniform(0.5, 1.5))
    if rng.integers(2):
        shift = int(rng.integers(-18, 19))
        hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + shift) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photometric distortion (reference ``_distort``), the second step.

    Returns a new ``uint8`` image of the same shape. With probability 0.5 the order is brightness ->
    contrast -> HSV(saturation, hue), otherwise brightness -> HSV(saturation, hue) -> contrast. Each op is
    applied with probability 0.5: brightness ``+U(-32, 32)``; contrast ``x U(0.5, 1.5)``; saturation
    ``x U(0.5, 1.5)``; hue ``+randint(-18, 18)`` (inclusive) modulo 180 in OpenCV's uint8 HSV. After every
    op values are clipped to ``[0, 255]`` and truncated to uint8, as in the reference.
    """
    image = _check_image(image)
    out = image.copy()
    if rng.integers(2):
        out = _brightness(out, rng)
        out = _contrast(out, rng)
        out = _saturation_hue(out, rng)
    else:
        out = _brightness(out, rng)
        out = _saturation_hue(out, rng)
        out = _contrast(out, rng)
    return out


# ------------------------------------------------------------------------------------- pad and mirror


def _mean_pixel(mean_bgr: Sequence[float]) -> np.ndarray:
    mean = np.asarray(mean_bgr, dtype=np.float64).reshape(-1)
    if mean.shape != (3,):
        raise ValueError(f"mean_bgr must have 3 values, got {mean_bgr!r}")
    return np.clip(np.round(mean), 0, 255).astype(np.uint8)


def pad_to_square(image: np.ndarray, mean_bgr: Sequence[float] = MEAN_BGR) -> np.ndarray:
    """Pad to a ``L x L`` square, ``L = max(H, W)`` (reference ``_pad_to_square``).

    In :class:`TrainTransform` this is the third step, taken only when :func:`random_crop` found no
    acceptable crop in its tries.

    The image is placed top-left, so box and landmark pixel coordinates are unchanged; the padding is
    filled with ``mean_bgr`` (rounded to uint8), which becomes zero after mean subtraction.
    """
    image = _check_image(image)
    height, width = image.shape[:2]
    side = max(height, width)
    out = np.empty((side, side, 3), dtype=np.uint8)
    out[:, :] = _mean_pixel(mean_bgr)
    out[:height, :width] = image
    return out


def mirror(
    image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal flip with probability 0.5 (reference ``_mirror``), the fourth step.

    Returns new arrays either way. With ``W`` the image width: ``x1' = W - x2``, ``x2' = W - x1``,
    landmark ``x' = W - x``; then the eyes (points 0 <-> 1) and mouth corners (3 <-> 4) swap so that
    point 0 is again the eye with the smaller ``x``. The flip is applied to every landmark row, including
    all-zero rows of faces without landmarks (which become ``x = W``): callers re-zero those
    (:class:`TrainTransform` does).
    """
    image = _check_image(image)
    boxes = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    landmarks = np.array(landmarks, dtype=np.float32, copy=True).reshape(-1, 5, 2)
    if not rng.integers(2):
        return image.copy(), boxes, landmarks
    width = image.shape[1]
    flipped = cv2.flip(image, 1)
    new_boxes = boxes.copy()
    new_boxes[:, 0] = width - boxes[:, 2]
    new_boxes[:, 2] = width - boxes[:, 0]
    new_landmarks = landmarks.copy()
    new_landmarks[:, :, 0] = width - landmarks[:, :, 0]
    new_landmarks = new_landmarks[:, _SWAP]
    return flipped, new_boxes, new_landmarks


# --------------------------------------------------------------------------------------------- resize


def resize(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Resize to ``size x size`` with an interpolation drawn uniformly from :data:`INTERPOLATIONS`
    (linear, cubic, area, nearest, Lanczos-4), the last step (reference ``_resize_subtract_mean``).
    Returns ``uint8 [size, size, 3]``.

    Boxes need no update: targets are normalised by the size before the resize.
    """
    image = _check_image(image)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    interpolation = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
    return cv2.resize(image, (size, size), interpolation=interpolation)


# -------------------------------------------------------------------------------------------- targets


def normalise_to_image(xy: Any, width: float, height: float) -> Any:
    """Pixel coordinates -> fractions of the image, clipped to it: ``xy[..., 2K]`` (``K`` points
    ``x, y``: boxes ``[M, 4]`` as ``x1, y1, x2, y2``, landmarks ``[M, 5, 2]`` or ``[M, 10]``) divided
    by ``(width, height)`` and clipped to ``[0, 1]``; same shape.

    ``xy`` is a NumPy array (divided by float32 ``(width, height)``) or a torch tensor (divided by
    ``(width, height)`` in its own dtype, on its device); the result is of the same kind.
    """
    points = xy.reshape(*xy.shape[:-1], xy.shape[-1] // 2, 2)
    scale = xy.new_tensor([width, height]) if hasattr(xy, "new_tensor") else np.array([width, height], np.float32)
    return (points / scale).clip(0.0, 1.0).reshape(xy.shape)


def build_targets(
    boxes: np.ndarray, landmarks: np.ndarray, has_landmarks: np.ndarray, width: float, height: float
) -> np.ndarray:
    """Target rows ``float32 [M, 15]`` from pixel annotations of an image of size ``width x height``.

    Columns 0-3 ``x1, y1, x2, y2`` / ``(W, H, W, H)``; 4-13 landmarks ``x0, y0, ..., x4, y4`` normalised the
    same way (zeros when absent); 14 the label (``1.0`` with landmarks, ``-1.0`` without). Coordinates are
    clipped to ``[0, 1]`` (only annotations that extend past the image border are affected: crops are
    already clipped) and faces left with no width or height are dropped.
    """
    boxes, landmarks, has_landmarks = _copy_annotations(boxes, landmarks, has_landmarks)
    norm_boxes = normalise_to_image(boxes, width, height)
    norm_landmarks = normalise_to_image(landmarks, width, height)
    norm_landmarks[~has_landmarks] = 0.0
    labels = np.where(has_landmarks, 1.0, -1.0).astype(np.float32)
    targets = np.concatenate([norm_boxes, norm_landmarks.reshape(-1, 10), labels[:, None]], axis=1).astype(
        np.float32
    )
    valid = (targets[:, 2] > targets[:, 0]) & (targets[:, 3] > targets[:, 1])
    if not valid.all():
        logger.debug("dropping %d face(s) with no area inside the image", int((~valid).sum()))
    return np.ascontiguousarray(targets[valid])


def to_network_input(image: np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """uint8 HWC BGR -> float32 CHW with the mean subtracted (no std division): the inference
    pipeline's own batch builder (:func:`featherface.pipeline.make_batch`), one image."""
    return make_batch([image], mean_bgr)[0].numpy()


# ------------------------------------------------------------------------------------ face-free frames


def face_free_frame(size: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic ``uint8 [size, size, 3]`` BGR frame that contains no face.

    One of: a uniform colour (black, white, mid grey or random), a linear gradient between two random
    colours, or smooth low-frequency noise (a random 4x4 to 16x16 grid upsampled bicubically), plus
    mild pixel noise half of the time. Training on such frames with an empty target (and hard
    negatives mined on them, ``MultiBoxLoss(min_negatives=...)``) teaches the detector that blank and
    flat regions hold no face; without them it saw only crops that contain a face.
    """
    kind = int(rng.integers(0, 4))
    if kind == 0:  # the classic blank frames
        level = float(rng.choice([0.0, 127.0, 255.0]))
        frame = np.full((size, size, 3), level, dtype=np.float32)
    elif kind == 1:
        frame = np.broadcast_to(rng.uniform(0, 255, size=3).astype(np.float32), (size, size, 3)).copy()
    elif kind == 2:
        a, b = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)
        ramp = t[None, :, None] if rng.random() < 0.5 else t[:, None, None]
        frame = np.broadcast_to(a + (b - a) * ramp, (size, size, 3)).copy()
    else:
        cells = int(rng.integers(4, 17))
        grid = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.float32)
        frame = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        frame = frame + rng.normal(0.0, float(rng.uniform(1.0, 8.0)), size=frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ transforms


@dataclass(frozen=True)
class TrainTransform:
    """The full RetinaFace training transform (reference ``preproc``), plus scale coverage of large inputs.

    ``__call__(image_bgr_uint8, boxes, landmarks, has_landmarks, rng, ignore=None)`` runs crop -> distort ->
    pad-if-crop-failed -> mirror -> resize -> float32, subtract ``mean_bgr``, HWC -> CHW, and returns
    ``(image float32 [3, S, S], targets float32 [M, 15])`` with ``S = image_size`` and the target layout in
    the module docstring. ``M <= N``: the crop keeps only faces whose centres it contains. ``ignore``
    (``[K, 4]`` pixel boxes of regions the labeller was unsure of) follows the same crop, mirror and
    normalisation and is appended as rows with label ``0.0`` (the matcher's ignore regions).

    Two item kinds beyond the authors' crop, each drawn with its probability (both 0 by default, and
    then no extra random draw is made):

    * ``background_crops``: a square window that overlaps no face and no ignore region, its side a
      fraction in ``background_scales`` of the short side, resized to ``S``: background magnified as it
      appears in a large network input (a 2048 px input of a 1024 px photo is a 2x magnification),
      with no face target; needs ``min_negatives`` in the loss to contribute.
    * ``whole_images``: the whole image padded to a square and resized: faces as small as a downscaled
      photo has them, with the full context around them.
    """

    image_size: int = 640
    mean_bgr: tuple[float, float, float] = MEAN_BGR
    crop_scales: tuple[float, ...] = CROP_SCALES
    max_tries: int = 250
    min_face: float = 0.0
    negative_frames: float = 0.0
    background_crops: float = 0.0
    background_scales: tuple[float, float] = (0.08, 0.5)
    whole_images: float = 0.0

    def __post_init__(self) -> None:
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        for name in ("negative_frames", "background_crops", "whole_images"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.negative_frames + self.background_crops + self.whole_images >= 1.0:
            raise ValueError("negative_frames + background_crops + whole_images must be below 1")
        lo, hi = self.background_scales
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"background_scales must be (lo, hi) with 0 < lo <= hi <= 1, got {self.background_scales!r}")
        if len(self.mean_bgr) != 3:
            raise ValueError(f"mean_bgr must have 3 values, got {self.mean_bgr!r}")
        if not self.crop_scales or any(not 0 < s <= 1 for s in self.crop_scales):
            raise ValueError(f"crop_scales must be values in (0, 1], got {self.crop_scales!r}")
        if self.max_tries < 0:
            raise ValueError(f"max_tries must be >= 0, got {self.max_tries}")

    def __call__(
        self,
        image_bgr_uint8: np.ndarray,
        boxes: np.ndarray,
        landmarks: np.ndarray,
        has_landmarks: np.ndarray,
        rng: np.random.Generator,
        ignore: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        image = _check_image(image_bgr_uint8)
        if self.negative_frames and rng.random() < self.negative_frames:
            frame = face_free_frame(self.image_size, rng)
            return to_network_input(frame, self.mean_bgr), np.zeros((0, 15), dtype=np.float32)
        boxes, landmarks, has_landmarks = _copy_annotations(boxes, landmarks, has_landmarks)
        ign = np.zeros((0, 4), np.float32) if ignore is None else np.array(ignore, np.float32, copy=True).reshape(-1, 4)
        mode = "crop"
        if self.background_crops or self.whole_images:
            u = rng.random()
            if u < self.background_crops:
                mode = "background"
            elif u < self.background_crops + self.whole_images:
                mode = "whole"
        if mode == "background":
            window = _background_window(image.shape[:2], np.concatenate([boxes, ign]), rng, self.background_scales)
            if window is not None:
                left, top, side = window
                crop = photometric_distort(image[top : top + side, left : left + side].copy(), rng)
                crop, _, _ = mirror(crop, np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), rng)
                crop = resize(crop, self.image_size, rng)
                return to_network_input(crop, self.mean_bgr), np.zeros((0, 15), dtype=np.float32)
            mode = "crop"
        if mode == "whole":
            pad_needed = True
        else:
            window = _draw_crop(image.shape[:2], boxes, rng, np.asarray(self.crop_scales, np.float64),
                                self.max_tries, self.min_face, self.image_size)
            pad_needed = window is None
            if window is not None:
                left, top, side, keep = window
                boxes, landmarks, has_landmarks = _crop_annotations(boxes, landmarks, has_landmarks, left, top, side)
                boxes, landmarks, has_landmarks = boxes[keep], landmarks[keep], has_landmarks[keep]
                if len(ign):
                    ign, _, _ = _crop_annotations(ign, np.zeros((len(ign), 5, 2), np.float32),
                                                  np.zeros(len(ign), bool), left, top, side)
                image = image[top : top + side, left : left + side].copy()
        image = photometric_distort(image, rng)
        if pad_needed:
            image = pad_to_square(image, self.mean_bgr)
        n = len(boxes)
        all_boxes = np.concatenate([boxes, ign])
        all_landmarks = np.concatenate([landmarks, np.zeros((len(ign), 5, 2), np.float32)])
        image, all_boxes, all_landmarks = mirror(image, all_boxes, all_landmarks, rng)
        boxes, landmarks, ign = all_boxes[:n], all_landmarks[:n], all_boxes[n:]
        landmarks[~has_landmarks] = 0.0
        height, width = image.shape[:2]
        image = resize(image, self.image_size, rng)
        targets = build_targets(boxes, landmarks, has_landmarks, width, height)
        if len(ign):
            targets = np.concatenate([targets, _ignore_rows(ign, width, height)])
        return to_network_input(image, self.mean_bgr), targets


def _ignore_rows(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Ignore regions as target rows (box normalised and clipped, landmarks 0, label 0); empty ones dropped."""
    rows = np.zeros((len(boxes), TARGET_DIM), np.float32)
    rows[:, :4] = normalise_to_image(boxes, width, height)
    valid = (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
    return rows[valid]


@dataclass(frozen=True)
class EvalTransform:
    """Deterministic transform for validation subsets: pad to square (top-left, mean fill), resize to
    ``image_size`` with bilinear interpolation, subtract ``mean_bgr``, HWC -> CHW.

    Same call signature and output convention as :class:`TrainTransform`; ``rng`` is accepted and unused.
    All faces are kept; targets are normalised by the padded square's side.
    """

    image_size: int = 640
    mean_bgr: tuple[float, float, float] = MEAN_BGR

    def __post_init__(self) -> None:
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if len(self.mean_bgr) != 3:
            raise ValueError(f"mean_bgr must have 3 values, got {self.mean_bgr!r}")

    def __call__(
        self,
        image_bgr_uint8: np.ndarray,
        boxes: np.ndarray,
        landmarks: np.ndarray,
        has_landmarks: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        image = pad_to_square(_check_image(image_bgr_uint8), self.mean_bgr)
        side = image.shape[0]
        image = cv2.resize(image, (self.image_size, self.image_size), interpolation=cv2.INTER_LINEAR)
        targets = build_targets(boxes, landmarks, has_landmarks, side, side)
        return to_network_input(image, self.mean_bgr), targets
