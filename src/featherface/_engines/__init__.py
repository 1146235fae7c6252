"""Inference engines: the network call, nothing else. The entry point is :func:`make_runner`.

:func:`select_engine` checks an engine choice once (backend name, device, thread count, whether ONNX
Runtime can run here) and resolves the device once; :func:`make_runner` turns a network and that
choice into a :class:`~featherface._engines.base.Runner`:

- ``"torch"`` (:class:`~featherface._engines.torch_runner.TorchRunner`): a PyTorch module under
  ``torch.inference_mode``; by default the BatchNorm-folded copy of the network
  (:func:`featherface._models.fuse.fuse_for_inference`), in channels-last memory layout on CPU.
- ``"onnxruntime"`` (:class:`~featherface._engines.onnxruntime.OnnxRuntimeRunner`): an ONNX Runtime
  session of the raw graph, exported by :func:`featherface._engines.onnx_export.export_network_onnx`
  and cached (:mod:`featherface._engines.onnxruntime`).

Both are safe to call from several threads at once. Engines know networks and configs, never model
names or weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from featherface._engines.base import BACKENDS, BatchSpec, Runner
from featherface._engines.device import parse_device, resolve_device
from featherface._engines.onnxruntime import import_onnxruntime, onnxruntime_runner_for
from featherface._engines.torch_runner import TorchRunner
from featherface._models.config import ModelConfig
from featherface._models.fuse import fuse_for_inference

__all__ = ["BACKENDS", "BatchSpec", "Runner", "Engine", "select_engine", "make_runner"]


@dataclass(frozen=True)
class Engine:
    """A checked engine choice (made by :func:`select_engine`): backend, resolved device and its settings."""

    backend: str
    device: torch.device
    fuse: bool = True
    channels_last: bool | None = None
    num_threads: int | None = None
    onnx_path: Path | None = None


def select_engine(
    backend: str = "torch",
    device: str | torch.device | None = None,
    *,
    fuse: bool = True,
    channels_last: bool | None = None,
    num_threads: int | None = None,
    onnx_path: str | os.PathLike | None = None,
) -> Engine:
    """Check an engine choice before any network exists; the device is resolved here, once.

    Raises:
        ValueError: an unknown backend, a bad ``num_threads``, ``onnx_path`` without the onnxruntime
            backend, or a non-CPU device with it. DeviceError: an unusable device
            (:func:`featherface._engines.device.resolve_device`). ImportError: the onnxruntime backend
            without onnxruntime installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads <= 0:
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    if onnx_path is not None and backend != "onnxruntime":
        raise ValueError("onnx_path= is only used with backend='onnxruntime'")
    if backend == "onnxruntime":
        if device is not None and parse_device(device).type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU; got device={str(device)!r}")
        import_onnxruntime()  # the one "can ONNX Runtime run here" check
        device = "cpu"
    path = None if onnx_path is None else Path(onnx_path)
    return Engine(backend, resolve_device(device), fuse, channels_last, num_threads, path)


def make_runner(network: nn.Module, config: ModelConfig, engine: Engine, *, cache: bool = True) -> Runner:
    """The runner of ``engine`` for ``network`` (already on ``engine.device``, eval mode).

    ``"torch"``: the BatchNorm-folded copy (``engine.fuse``) or ``network`` itself, in channels-last
    layout when ``engine.channels_last`` (default: fused and on CPU). ``"onnxruntime"``: the graph at
    ``engine.onnx_path``, else the cached export of ``network`` (``cache=False``: a temporary export,
    for random weights).
    """
    if engine.backend == "onnxruntime":
        return onnxruntime_runner_for(network, config, onnx_path=engine.onnx_path, cache=cache,
                                      num_threads=engine.num_threads)
    module = fuse_for_inference(network) if engine.fuse else network
    channels_last = engine.channels_last
    if channels_last is None:  # measured faster for both networks on CPU (docs/deployment.md)
        channels_last = engine.fuse and engine.device.type == "cpu"
    if channels_last:  # with fuse=False this converts ``network`` itself (same parameters)
        module = module.to(memory_format=torch.channels_last)
    return TorchRunner(module, engine.device, channels_last=channels_last, num_threads=engine.num_threads)
