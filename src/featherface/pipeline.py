"""The detection pipeline, one public stage at a time.

Every way of detecting faces goes through these stages, in this order: ``FaceDetector.detect``,
``detect_batch`` and ``detect_stream``, ``featherface detect``, ``featherface bench`` (which times
them), the WIDER FACE evaluation, distillation and pseudo-labelling; the ONNX detection graph
(``featherface.export_onnx(..., with_postprocess=True)``) decodes with :func:`decode_to_pixels` and
:func:`face_probability` too and differs only by its ``NonMaxSuppression`` operator.

::

    image (path, bytes, array, PIL, tensor)
      --preprocess-->  PreparedImage: BGR H x W x 3 at the network size + the original (H, W)
      --make_batch-->  Tensor[B, 3, H, W] float32, BGR minus the mean, laid out as runner.batch_spec says
      --runner------>  RawOutputs: loc [B, N, 4], logits [B, N, 2], landmarks [B, N, 10]
      --postprocess->  RawDetections per image, in network-input pixels (scores, decoded boxes, NMS)
      --to_original->  list[Detection] per image, in original-image pixels, clipped to the image

"Decode" means one thing here and in the box coder: offsets against priors -> coordinates
(:func:`decode_to_pixels`). :class:`DetectionPipeline` binds the stages to one model (its
:class:`~featherface.ModelConfig`) and one runner, the engine that runs the network (``runner(batch) ->
RawOutputs``, a torch module or an ONNX Runtime session); calling it runs stages 2-5 for prepared images
of one network-input size. Coordinates are ``(x1, y1, x2, y2)`` pixels; landmarks are ``(x, y)`` pairs
in the order left eye, right eye, nose, left and right mouth corners.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from featherface._engines.base import BatchSpec, Runner
from featherface._models.config import ModelConfig, PriorConfig
from featherface._ops.box_coder import Variances, decode_boxes, decode_landmarks
from featherface._ops.boxes import clip_boxes, nms
from featherface._ops.priors import priors_like
from featherface._options import DetectorOptions
from featherface.detection import Detection, RawOutputs
from featherface.io import ColorOrder, ImageInput, load_image

__all__ = [
    "PreparedImage",
    "RawDetections",
    "DetectionPipeline",
    "preprocess",
    "make_batch",
    "face_probability",
    "decode_to_pixels",
    "postprocess",
    "to_original",
]

# -- 1. preprocess ---------------------------------------------------------------------------------


class PreparedImage(NamedTuple):
    """One image ready to be batched.

    Attributes:
        image: ``H x W x 3`` BGR array (uint8, or float32 for float inputs) at the network-input size.
        original_size: ``(height, width)`` of the image as given, where detections are mapped back to.
    """

    image: np.ndarray
    original_size: tuple[int, int]

    @property
    def network_size(self) -> tuple[int, int]:
        """``(height, width)`` of the network input."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def preprocess(image: ImageInput, options: DetectorOptions, *, color: ColorOrder = "rgb") -> PreparedImage:
    """Load one image (:func:`featherface.io.load_image`: any accepted input, to BGR) and resize it to
    the network-input size that ``options`` ask for (:meth:`DetectorOptions.network_size`; area
    interpolation when shrinking, bilinear when enlarging). The input is only read.

    Raises:
        ImageError, FileNotFoundError, TypeError: an input that is not a readable image.
        ValueError: a network input above ``options.max_input_pixels``.
    """
    import cv2

    img = load_image(image, color=color)
    height, width = img.shape[:2]
    h, w = options.network_size(height, width)
    if (h, w) != (height, width):
        interp = cv2.INTER_AREA if h * w < height * width else cv2.INTER_LINEAR
        img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=interp)
    return PreparedImage(img, (height, width))


# -- 2. batch --------------------------------------------------------------------------------------


def _tensor_view(array: np.ndarray) -> torch.Tensor:
    """A tensor of ``array``'s values for reading only: its memory where torch can view it, else a copy."""
    if any(stride < 0 for stride in array.strides):  # e.g. a flipped image: torch has no negative strides
        return torch.from_numpy(np.ascontiguousarray(array))
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():  # torch warns that writes through the view would be undefined
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def make_batch(images: Sequence[np.ndarray | torch.Tensor], mean_bgr: Sequence[float],
               spec: BatchSpec | None = None) -> torch.Tensor:
    """Stack same-size BGR ``H x W x 3`` images into ``Tensor[B, 3, H, W]`` float32, ``mean_bgr`` subtracted.

    The one image-to-tensor builder of the package (inference, streaming, evaluation, distillation,
    pseudo-labelling and training inputs). One output allocation in the layout of ``spec`` (default:
    CPU, NCHW, torch fill), filled by a cast-and-transpose copy per channel and an in-place mean
    subtraction. ``images`` (arrays, or ``H x W x 3`` tensors from worker processes) are only read.

    Raises:
        ValueError: no images, or images of different sizes or not ``H x W x 3``.
    """
    spec = spec or BatchSpec()
    arrays = [im.numpy() if isinstance(im, torch.Tensor) else np.asarray(im) for im in images]
    if not arrays:
        raise ValueError("make_batch: no images")
    h, w = arrays[0].shape[:2]
    for a in arrays:
        if a.ndim != 3 or a.shape[2] != 3 or a.shape[:2] != (h, w):
            raise ValueError(f"make_batch: expected H x W x 3 images of one size, got shapes "
                             f"{[tuple(x.shape) for x in arrays]}")
    mean = np.asarray(mean_bgr, dtype=np.float32).reshape(3)
    n = len(arrays)
    if spec.device.type == "cuda":
        dtype = torch.uint8 if all(a.dtype == np.uint8 for a in arrays) else torch.float32
        host = torch.empty((n, h, w, 3), dtype=dtype, pin_memory=True)
        view = host.numpy()
        for j, a in enumerate(arrays):
            view[j] = a
        t = host.to(spec.device, non_blocking=True).permute(0, 3, 1, 2).float()  # channels-last in memory
        return t.sub_(torch.from_numpy(mean).view(1, 3, 1, 1).to(spec.device))
    if spec.fill == "numpy":
        arr = np.empty((n, 3, h, w), dtype=np.float32)
        for i, a in enumerate(arrays):
            for c in range(3):
                plane = arr[i, c]
                plane[...] = a[:, :, c]
                plane -= mean[c]
        out = torch.from_numpy(arr)
    else:
        fmt = torch.channels_last if spec.channels_last else torch.contiguous_format
        out = torch.empty((n, 3, h, w), dtype=torch.float32, memory_format=fmt)
        for i, a in enumerate(arrays):
            for c in range(3):  # a channel slice has non-negative strides even for an RGB->BGR view
                out[i, c].copy_(_tensor_view(a[:, :, c]))
        out.sub_(torch.from_numpy(mean).view(3, 1, 1))
    return out if spec.device.type == "cpu" else out.to(spec.device, non_blocking=True)


# -- 3. run ----------------------------------------------------------------------------------------


# -- 4. postprocess---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawDetections:
    """Detections of one image, in **network-input pixels**, descending score.

    ``boxes[K, 4]`` (x1, y1, x2, y2), ``scores[K]``, ``landmarks[K, 10]`` (x0, y0, ..., x4, y4).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    landmarks: torch.Tensor


# Margin of the logit-space pre-filter: far above the float32 rounding of ``l1 - l0`` for logits of
# magnitude up to ~1e4, so no prior whose softmax score passes the threshold is dropped by it.
_LOGIT_MARGIN = 1e-2


def _face_candidates(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices ``[K]`` of the rows of ``logits[N, 2]`` whose face probability may exceed ``threshold``.

    ``softmax(l)[1] = sigmoid(l1 - l0)`` is monotonic in ``l1 - l0``, so comparing the logit
    difference with ``logit(threshold)`` (minus a margin) selects a superset of the passing rows
    without computing a probability for all ``N`` priors; :func:`face_probability` is then taken on
    the candidates only, which gives the same scores as on every row.
    """
    if not 0.0 < threshold < 1.0:
        return torch.arange(logits.shape[0], device=logits.device)
    cut = math.log(threshold / (1.0 - threshold)) - _LOGIT_MARGIN
    return torch.nonzero((logits[:, 1] - logits[:, 0]) > cut).squeeze(1)


def face_probability(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(logits, -1)[..., 1]`` for ``logits[..., 2]``, written out (max-shifted, like softmax).

    Equal to ``torch.softmax`` to float32 rounding. Written out because ``torch.softmax`` on CPU
    always opens an OpenMP parallel region, even for a few rows, after which torch's idle OpenMP
    threads spin-wait and slow down the next ONNX Runtime call on the same cores (measured +15-20%
    network time at 640x480 with 2 threads); these elementwise ops stay on the calling thread for
    the sizes seen here. Exports to ONNX as elementwise operators.
    """
    e = (logits - logits.amax(dim=-1, keepdim=True)).exp()
    return e[..., 1] / (e[..., 0] + e[..., 1])


def decode_to_pixels(loc: torch.Tensor, landmarks: torch.Tensor, priors: torch.Tensor, variances: Variances,
                     size_wh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets to pixel coordinates of the network input.

    Args:
        loc: ``[..., K, 4]`` box offsets; landmarks: ``[..., K, 10]`` landmark offsets.
        priors: ``[..., K, 4]`` (or broadcastable) ``(cx, cy, w, h)`` normalised priors.
        size_wh: ``Tensor[2]`` ``(width, height)`` of the network input (a tensor so that the ONNX
            graph can pass its dynamic input size).

    Returns:
        ``boxes[..., K, 4]`` ``(x1, y1, x2, y2)`` and ``points[..., K, 10]`` ``(x0, y0, ..., x4, y4)``
        in network-input pixels, not clipped.
    """
    boxes = decode_boxes(loc, priors, variances) * size_wh.repeat(2)
    points = decode_landmarks(landmarks, priors, variances) * size_wh.repeat(5)
    return boxes, points


def postprocess(raw: RawOutputs, network_size: tuple[int, int], priors_config: PriorConfig,
           options: DetectorOptions) -> list[RawDetections]:
    """Raw outputs of a ``[B, 3, H, W]`` batch -> detections per image, in network-input pixels.

    Per image: face probability of the priors that may pass ``options.score_threshold`` (strictly
    above), the best ``pre_nms_top_k`` of those, boxes and landmarks decoded (:func:`decode_to_pixels`)
    against the priors of
    ``network_size = (H, W)`` (:func:`featherface._ops.priors.priors_like` of ``priors_config``, the
    model's ``config.priors``), NMS at ``iou_threshold``
    (``legacy_nms``: the reference "+1 pixel" convention), at most ``max_detections`` kept.

    Returns:
        One :class:`RawDetections` per image, descending score, coordinates not clipped.
    """
    loc, logits, landmarks = raw
    h, w = network_size
    priors = priors_like(network_size, priors_config, loc)
    size_wh = torch.tensor([w, h], dtype=loc.dtype, device=loc.device)
    results = []
    for b in range(loc.shape[0]):
        keep = _face_candidates(logits[b], options.score_threshold)
        scores = face_probability(logits[b, keep])
        passed = scores > options.score_threshold
        keep, scores = keep[passed], scores[passed]
        order = torch.sort(scores, descending=True, stable=True).indices
        if options.pre_nms_top_k is not None:
            order = order[: options.pre_nms_top_k]
        keep, scores = keep[order], scores[order]
        boxes, points = decode_to_pixels(loc[b, keep], landmarks[b, keep], priors[keep],
                                         priors_config.variances, size_wh)
        sel = nms(boxes, scores, options.iou_threshold, plus_one=options.legacy_nms,
                  max_output=options.max_detections)
        results.append(RawDetections(boxes[sel], scores[sel], points[sel]))
    return results


# -- 5. map back -----------------------------------------------------------------------------------


def to_original(raw: RawDetections, network_size: tuple[int, int], original_size: tuple[int, int]) -> list[Detection]:
    """Detections of one image in original-image pixels: scaled by ``original / network`` size per
    axis, boxes clipped to ``[0, width] x [0, height]`` (landmarks are not clipped)."""
    (h, w), (height, width) = network_size, original_size
    sx, sy = width / w, height / h
    scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
    size_wh = torch.tensor([width, height], dtype=torch.float64)
    boxes = clip_boxes(raw.boxes.detach().cpu().double() * scale, size_wh).numpy()
    pts = raw.landmarks.detach().cpu().double().numpy().reshape(-1, 5, 2)
    scores = raw.scores.detach().cpu().double().numpy()
    pts[..., 0] *= sx
    pts[..., 1] *= sy
    return [
        Detection(
            box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            score=float(s),
            landmarks=tuple((float(x), float(y)) for x, y in p),  # type: ignore[arg-type]
        )
        for b, s, p in zip(boxes, scores, pts)
    ]


# -- the stages bound to one model and engine ------------------------------------------------------


class DetectionPipeline:
    """The stages of this module for one model (``config``: mean, priors) run by one ``runner``.

    Holds no per-call state: one pipeline may serve several threads (see :class:`featherface.FaceDetector`).
    """

    def __init__(self, config: ModelConfig, runner: Runner) -> None:
        self.config = config
        self.runner = runner

    def __repr__(self) -> str:
        return f"DetectionPipeline(model={self.config.name!r}, runner={self.runner.name!r})"

    def __call__(self, prepared: Sequence[PreparedImage], options: DetectorOptions) -> list[list[Detection]]:
        """Stages 2-5 for images of one network-input size (:func:`preprocess` made them): one network
        call, faces per image in original-image pixels.

        Raises:
            ValueError: images of different network-input sizes (group them first, as
                ``FaceDetector.detect_batch`` does).
        """
        size = prepared[0].network_size
        if any(p.network_size != size for p in prepared):
            raise ValueError("DetectionPipeline: images of one network-input size only; got "
                             f"{sorted({p.network_size for p in prepared})}")
        raw = self.runner(make_batch([p.image for p in prepared], self.config.mean_bgr, self.runner.batch_spec))
        found = postprocess(raw, size, self.config.priors, options)
        return [to_original(det, size, p.original_size) for det, p in zip(found, prepared)]
