"""ONNX export of a detector: the raw network graph, or a complete detector graph with post-processing.

:func:`export_onnx` writes one of two graphs, both with dynamic batch, height and width:

**Raw graph** (default): the BatchNorm-folded network, see :mod:`featherface._engines.onnx_export`
(input ``input`` float32 ``[B, 3, H, W]`` BGR minus the mean; outputs ``loc`` ``[B, N, 4]``, ``logits``
``[B, N, 2]``, ``landmarks`` ``[B, N, 10]``, rows in prior order).

**Detector graph** (``with_postprocess=True``): image in, faces out.

- input ``input``: ``[B, 3, H, W]`` raw BGR pixels 0..255, uint8 by default (``input_dtype="float32"``
  for float pixels); the mean is subtracted inside the graph. An OpenCV frame ``img`` (``H x W x 3``
  BGR uint8) becomes ``img.transpose(2, 0, 1)[None]``.
- outputs, for the ``K`` faces of the whole batch, image by image, best first within an image:
  ``boxes`` float32 ``[K, 4]`` (x1, y1, x2, y2 in input pixels, clipped to the image),
  ``scores`` float32 ``[K]``, ``landmarks`` float32 ``[K, 10]`` (x0, y0, ..., x4, y4 in input pixels:
  left eye, right eye, nose, left and right mouth corners) and ``batch_index`` int64 ``[K]`` (the image
  each face belongs to).

Inside the detector graph: priors are generated from the input shape by the one prior function
(:func:`featherface._ops.priors.priors_for_shape`, traced), boxes, landmarks and face probabilities are
decoded by the pipeline's own functions (:func:`featherface.pipeline.decode_to_pixels`,
:func:`featherface.pipeline.face_probability`), the best
``pre_nms_top_k`` priors per image are kept and ONNX ``NonMaxSuppression`` (one class, per image; the
continuous IoU convention) applies the score threshold (strictly greater), the IoU threshold and
``max_detections``. These three values are constants of the graph: export again to change them. The
result equals :meth:`featherface.FaceDetector.detect` on an image of the input's size with the same
options (``legacy_nms=False``).

The exporter, its opsets and V1's ``DeformConv`` nodes: :mod:`featherface._engines.onnx_export`.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.onnx import operators as onnx_operators

from featherface._engines.onnx_export import (
    DEFAULT_OPSET,
    SAMPLE_SIZE,
    export_module,
    export_network_onnx,
    write_atomic,
)
from featherface._models.config import ModelConfig
from featherface._models.fuse import fuse_for_inference
from featherface._ops.boxes import clip_boxes, nms
from featherface._ops.priors import priors_for_shape
from featherface._options import DetectorOptions
from featherface.pipeline import decode_to_pixels, face_probability

logger = logging.getLogger(__name__)

__all__ = ["export_onnx", "DetectionGraph", "DETECTION_OUTPUTS"]

DETECTION_OUTPUTS = ("boxes", "scores", "landmarks", "batch_index")
_UNCAPPED = 2**31 - 1  # NonMaxSuppression's "no limit" for max_detections=None


# -- in-graph pieces ---------------------------------------------------------------------------------


class _NonMaxSuppression(torch.autograd.Function):
    """Per-image, one-class NMS that exports to ONNX ``NonMaxSuppression``.

    ``boxes[B, N, 4]`` (x1, y1, x2, y2), ``scores[B, 1, N]`` -> ``selected[K, 3]`` int64 rows
    ``(batch, 0, box)``, image by image, best first. Eager execution uses :func:`featherface._ops.boxes.nms`
    (continuous IoU, suppress when IoU > threshold, keep scores > score_threshold), like ONNX Runtime.
    """

    @staticmethod
    def forward(ctx: Any, boxes: torch.Tensor, scores: torch.Tensor, max_output: int, iou_threshold: float,
                score_threshold: float) -> torch.Tensor:  # type: ignore[override]
        rows = []
        for b in range(boxes.shape[0]):
            s = scores[b, 0]
            cand = torch.nonzero(s > score_threshold).squeeze(1)
            keep = cand[nms(boxes[b, cand], s[cand], iou_threshold, max_output=max_output)]
            rows.append(torch.stack([torch.full_like(keep, b), torch.zeros_like(keep), keep], dim=1))
        if not rows:
            return torch.zeros((0, 3), dtype=torch.long, device=boxes.device)
        return torch.cat(rows, 0)

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any, max_output: int, iou_threshold: float,
                 score_threshold: float) -> Any:
        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            g.op("Constant", value_t=torch.tensor([max_output], dtype=torch.long)),
            g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
            g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)),
            center_point_box_i=0,
        )


def _top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``topk(scores, min(k, N), dim=1)`` with ``N`` dynamic when tracing."""
    if not torch.jit.is_tracing():
        return torch.topk(scores, min(k, scores.shape[1]), dim=1, sorted=True)
    n = onnx_operators.shape_as_tensor(scores)[1:2]
    kk = torch.min(torch.cat([torch.tensor([k], dtype=n.dtype), n]))
    return torch.topk(scores, kk, dim=1, sorted=True)  # type: ignore[arg-type]


class DetectionGraph(nn.Module):
    """Image batch -> faces, written for ONNX export (see the module docstring for inputs/outputs).

    Running it in PyTorch gives the exported graph's results, with :func:`featherface._ops.boxes.nms` in
    place of ``NonMaxSuppression``.
    """

    mean: torch.Tensor

    def __init__(self, network: nn.Module, config: ModelConfig, options: DetectorOptions | None = None) -> None:
        super().__init__()
        options = options or DetectorOptions()
        if options.legacy_nms:
            raise ValueError("the ONNX detector graph uses the continuous IoU convention; export with legacy_nms=False")
        self.network = network
        self.priors_cfg = config.priors
        self.register_buffer("mean", torch.tensor(config.mean_bgr, dtype=torch.float32).reshape(1, 3, 1, 1),
                             persistent=False)
        self.score_threshold = options.score_threshold
        self.iou_threshold = options.iou_threshold
        self.max_detections = _UNCAPPED if options.max_detections is None else options.max_detections
        self.pre_nms_top_k = options.pre_nms_top_k

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image.to(torch.float32) - self.mean
        loc, logits, ldm = self.network(x)
        shape = onnx_operators.shape_as_tensor(image)
        h, w = shape[2], shape[3]
        priors = priors_for_shape(h, w, self.priors_cfg)  # [N, 4]
        scores = face_probability(logits)  # [B, N]
        if self.pre_nms_top_k is not None:
            scores, idx = _top_k(scores, self.pre_nms_top_k)  # [B, k]
            loc = torch.gather(loc, 1, idx[..., None].expand(-1, -1, 4))
            ldm = torch.gather(ldm, 1, idx[..., None].expand(-1, -1, 10))
            pri = priors[idx]  # [B, k, 4]
        else:
            pri = priors[None]
        hw = torch.stack([w, h]).to(torch.float32)
        boxes, pts = decode_to_pixels(loc, ldm, pri, self.priors_cfg.variances, hw)
        sel = _NonMaxSuppression.apply(boxes, scores[:, None, :], self.max_detections, self.iou_threshold,
                                       self.score_threshold)
        batch_index, box_index = sel[:, 0], sel[:, 2]
        n = onnx_operators.shape_as_tensor(boxes)[1]
        flat = batch_index * n + box_index
        out_boxes = boxes.reshape(-1, 4).index_select(0, flat)
        out_scores = scores.reshape(-1).index_select(0, flat)
        out_pts = pts.reshape(-1, 10).index_select(0, flat)
        return clip_boxes(out_boxes, hw), out_scores, out_pts, batch_index


# -- export ------------------------------------------------------------------------------------------


def _resolve(source: Any, config: ModelConfig | None) -> tuple[nn.Module, ModelConfig, DetectorOptions]:
    """``(network, config, options)`` of a detector (anything with ``network``, ``config`` and
    ``options``, e.g. a :class:`featherface.FaceDetector`) or of a network and its config."""
    network, options = getattr(source, "network", None), getattr(source, "options", None)
    if isinstance(network, nn.Module) and isinstance(options, DetectorOptions):
        found = getattr(source, "config", None)
        if isinstance(found, ModelConfig):
            return network, found, options
    if isinstance(source, nn.Module):
        config = config if config is not None else getattr(source, "config", None)
        if isinstance(config, ModelConfig):
            return source, config, DetectorOptions()
    raise TypeError(
        f"export_onnx expects a FaceDetector, or a network and its config, got {type(source).__name__}"
    )


def export_onnx(
    source: Any,
    path: str | os.PathLike,
    *,
    config: ModelConfig | None = None,
    with_postprocess: bool = False,
    opset: int = DEFAULT_OPSET,
    score_threshold: float | None = None,
    iou_threshold: float | None = None,
    max_detections: int | None = None,
    pre_nms_top_k: int | None = None,
    input_dtype: Literal["uint8", "float32"] = "uint8",
) -> Path:
    """Export a detector to an ONNX file with dynamic batch, height and width.

    Args:
        source: a :class:`featherface.FaceDetector` (its network, config and options) or a network
            (with ``config=``, or its own ``config`` attribute; default options). Model names are
            resolved by the caller (``featherface export NAME`` on the command line, or
            ``export_onnx(featherface.load_model(NAME), ...)``).
        config: the network's :class:`~featherface.ModelConfig` when ``source`` is a network.
        path: the ``.onnx`` file to write (parent folders are created).
        with_postprocess: ``False``: the raw network graph (``input`` -> ``loc``, ``logits``,
            ``landmarks``). ``True``: the detector graph (raw BGR pixels -> ``boxes``, ``scores``,
            ``landmarks``, ``batch_index``); see docs/deployment.md.
        opset: ONNX opset (17 is tested).
        score_threshold: detector graph: keep faces scoring strictly above this.
        iou_threshold: detector graph: NMS IoU threshold.
        max_detections: detector graph: faces per image at most (``None``: no cap).
        pre_nms_top_k: detector graph: best candidates per image kept before NMS. These four are
            constants of the graph; default: the detector's options (0.5, 0.4, 750 and 5000 for a
            new detector).
        input_dtype: element type of the detector graph's ``input``, ``"uint8"`` or ``"float32"``
            (pixels 0..255 either way).

    Returns:
        ``path``.

    Raises:
        ValueError: a detector with ``legacy_nms=True`` (ONNX NMS has no "+1" convention) or an
            invalid threshold or ``input_dtype``. ImportError: the ``onnx`` package is missing
            (``pip install "featherface[onnx]"``).
    """
    network, config, options = _resolve(source, config)
    path = Path(path)
    if not with_postprocess:
        out = export_network_onnx(network, path, opset=opset)
        assert isinstance(out, Path)
        return out
    if input_dtype not in ("uint8", "float32"):
        raise ValueError(f"input_dtype must be 'uint8' or 'float32', got {input_dtype!r}")
    overrides = {k: v for k, v in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold),
                                   ("max_detections", max_detections), ("pre_nms_top_k", pre_nms_top_k))
                 if v is not None}
    graph = DetectionGraph(fuse_for_inference(network).to("cpu"), config, options.updated(**overrides)).eval()
    dtype = torch.uint8 if input_dtype == "uint8" else torch.float32
    sample = torch.full((1, 3, *SAMPLE_SIZE), 128, dtype=dtype)
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}}
    dyn.update({name: {0: "faces"} for name in DETECTION_OUTPUTS})
    buf = io.BytesIO()
    export_module(graph, sample, buf, ["input"], list(DETECTION_OUTPUTS), dyn, opset)
    out = write_atomic(path, buf.getvalue())
    logger.info("featherface: wrote %s (%s, detector graph)", out, config.name)
    return out
