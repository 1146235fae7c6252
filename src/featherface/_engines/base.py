"""What every engine is: the :class:`Runner` protocol and the :class:`BatchSpec` it asks its input in.

A runner maps a batch ``[B, 3, H, W]`` (float32, BGR minus the mean, built by
:func:`featherface.pipeline.make_batch` as its ``batch_spec`` asks) to the raw outputs
:data:`featherface.detection.RawOutputs` ``(loc, logits, landmarks)``; every other stage of
:mod:`featherface.pipeline` is shared, so every engine produces detections through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import torch

from featherface.detection import RawOutputs

__all__ = ["BACKENDS", "BatchSpec", "Runner"]

BACKENDS = ("torch", "onnxruntime")
"""The engine names ``load_model(backend=...)`` accepts."""


@dataclass(frozen=True)
class BatchSpec:
    """How a runner wants its input batch: what :func:`featherface.pipeline.make_batch` builds.

    Attributes:
        device: where the batch lives. On CUDA the images are copied in pinned host memory (as uint8
            when they are uint8: 4x less to copy) and converted on the GPU.
        channels_last: channels-last memory layout (torch CPU runners of a fused network).
        fill: ``"torch"`` fills the batch with torch copies; ``"numpy"`` with single-threaded numpy
            copies, for runners of another engine (ONNX Runtime): torch's OpenMP workers then do not
            spin-wait after a parallel copy and compete with that engine's threads (measured: ONNX
            Runtime network time +15-20% otherwise).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = False
    fill: Literal["torch", "numpy"] = "torch"


@runtime_checkable
class Runner(Protocol):
    """An engine that runs a network: ``runner(batch) -> (loc, logits, landmarks)``.

    ``batch`` is what :func:`featherface.pipeline.make_batch` built for ``runner.batch_spec``; engine-specific input
    handling (device moves, memory layout, conversion to the engine's arrays) happens inside the call.
    Implementations: :class:`~featherface._engines.torch_runner.TorchRunner`,
    :class:`~featherface._engines.onnxruntime.OnnxRuntimeRunner`.
    """

    name: str
    batch_spec: BatchSpec

    def __call__(self, batch: torch.Tensor) -> RawOutputs: ...
