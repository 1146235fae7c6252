"""The distillation teacher as an ONNX Runtime graph (training on the CPU).

The reference V1 teacher dominates a CPU training step in torch (its modulated deformable convs
have no fast CPU kernel there). :class:`OnnxRuntimeTeacher` exports it once, BatchNorm folded, with
the backbone features as extra outputs (:func:`featherface._engines.onnx_export.export_network_onnx`,
``with_features=True``), at opset 19 where the installed ONNX Runtime implements ``DeformConv``.
A student whose frozen backbone equals the teacher's takes those features instead of running its own
backbone (``TrainConfig(freeze_backbone=True, backbone_from_teacher=True)``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from featherface._engines.onnx_export import FEATURE_OUTPUTS, export_network_onnx
from featherface._engines.onnxruntime import backend_opset, make_session
from featherface.detection import RAW_OUTPUT_NAMES, RawOutputs

__all__ = ["OnnxRuntimeTeacher"]

Levels = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class OnnxRuntimeTeacher:
    """Callable ``images[B, 3, H, W] -> (features, outputs)`` backed by ONNX Runtime.

    ``features`` = ``(c3, c4, c5)`` of the teacher's backbone and ``outputs`` = raw ``(loc[B, N, 4],
    logits[B, N, 2], landmarks[B, N, 10])``, float32 CPU tensors (no gradient); they match the torch
    teacher in eval mode to float rounding (tested).

    Args:
        teacher: the frozen teacher network (``backbone`` + ``forward_head``); not modified.
        num_threads: intra-op threads of the session.
        opset: graph opset (default: 19 if the runtime has ``DeformConv``, else 17).
    """

    def __init__(self, teacher: nn.Module, *, num_threads: int | None = None, opset: int | None = None) -> None:
        data = export_network_onnx(teacher, None, opset=opset or backend_opset(), with_features=True)
        assert isinstance(data, bytes)
        # no spin-waiting: training shares the cores with its data-loader worker (and often more)
        self.session = make_session(data, num_threads=num_threads, spinning=False)
        self.names = [*FEATURE_OUTPUTS, *RAW_OUTPUT_NAMES]

    def __call__(self, images: torch.Tensor) -> tuple[Levels, RawOutputs]:
        x = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        c3, c4, c5, loc, logits, ldm = (torch.from_numpy(a) for a in self.session.run(self.names, {"input": x}))
        return (c3, c4, c5), (loc, logits, ldm)
