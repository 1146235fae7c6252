"""Export a network to its raw ONNX graph: the "export this module" step every ONNX user goes through
(the ONNX Runtime engine, :func:`featherface.export_onnx`, training's teacher).

The raw graph is the BatchNorm-folded network (:func:`featherface._models.fuse.fuse_for_inference`),
with dynamic batch, height and width:

- input ``input``: float32 ``[B, 3, H, W]``, BGR 0..255 with the model's mean subtracted
  (``config.mean_bgr``, (104, 117, 123) for the shipped models);
- outputs :data:`featherface.detection.RAW_OUTPUT_NAMES` ``loc`` ``[B, N, 4]``, ``logits`` ``[B, N, 2]``,
  ``landmarks`` ``[B, N, 10]``: the raw outputs of the pipeline's run stage, rows in prior order
  (:func:`featherface._ops.priors.generate_priors`).

The exporter is PyTorch's TorchScript-based one (``dynamo=False``), which keeps height and width
dynamic for both networks.

**Opset.** The default, 17, writes V1's modulated deformable convolutions as their decomposition
(``GridSample`` + ``MatMul``), which any runtime with ``GridSample`` (opset 16) runs. With
``opset >= 19`` each becomes one ``DeformConv`` node (same values; :mod:`featherface._ops.deform_conv`),
which needs a runtime that implements it: recent ONNX Runtime releases do, and run it faster. V2 Ultra
has no deformable convs; its graph is the same at either opset.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featherface._models.fuse import fuse_for_inference
from featherface._ops.deform_conv import native_onnx_export
from featherface.detection import RAW_OUTPUT_NAMES

__all__ = ["DEFAULT_OPSET", "NATIVE_DEFORM_OPSET", "FEATURE_OUTPUTS", "SAMPLE_SIZE", "export_network_onnx",
           "export_module", "write_atomic"]

DEFAULT_OPSET = 17
NATIVE_DEFORM_OPSET = 19  # from this opset on, V1's deformable convs export as ONNX ``DeformConv``
FEATURE_OUTPUTS = ("c3", "c4", "c5")  # backbone outputs of a graph exported ``with_features``

SAMPLE_SIZE = (64, 96)  # trace input; the graph is generic in batch, height and width


def export_module(module: nn.Module, sample: torch.Tensor, f: Any, input_names: list[str],
                  output_names: list[str], dynamic_axes: dict[str, dict[int, str]], opset: int) -> None:
    """``torch.onnx.export`` of ``module`` traced on ``sample`` into ``f`` (TorchScript exporter, constant
    folding; modulated deformable convs as ONNX ``DeformConv`` from :data:`NATIVE_DEFORM_OPSET` on)."""
    try:
        import onnx  # noqa: F401  (PyTorch's exporter needs it)
    except ImportError as exc:
        raise ImportError('ONNX export needs the onnx package, which is not installed: pip install "featherface[onnx]"') from exc
    deform = native_onnx_export() if opset >= NATIVE_DEFORM_OPSET else contextlib.nullcontext()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
        with torch.no_grad(), deform:
            torch.onnx.export(
                module, (sample,), f, input_names=input_names, output_names=output_names,
                dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False, do_constant_folding=True,
            )


class _WithFeatures(nn.Module):
    """``x -> (c3, c4, c5, loc, logits, landmarks)``: the backbone features next to the raw outputs."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.network.backbone(x)
        return (*feats, *self.network.forward_head(feats))


def export_network_onnx(network: nn.Module, path: str | os.PathLike | None = None, *,
                        opset: int = DEFAULT_OPSET, fuse: bool = True,
                        with_features: bool = False) -> bytes | Path:
    """Export the raw graph of ``network`` (see the module docstring); returns ``path``, or the bytes.

    The network is copied to the CPU (and BatchNorm-folded with ``fuse``); ``network`` is unchanged.
    ``with_features`` adds the backbone's outputs ``c3``, ``c4``, ``c5`` (``[B, 64|128|256, H/8|16|32,
    W/8|16|32]``) before the raw outputs: training runs the teacher this way and feeds its backbone
    features to a student that shares the frozen backbone (training).
    """
    net = fuse_for_inference(network) if fuse else _cpu_eval_copy(network)
    net = net.to("cpu").eval()
    sample = torch.zeros(1, 3, *SAMPLE_SIZE)
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}}
    dyn.update({name: {0: "batch", 1: "priors"} for name in RAW_OUTPUT_NAMES})
    names = list(RAW_OUTPUT_NAMES)
    if with_features:
        net = _WithFeatures(net)
        names = [*FEATURE_OUTPUTS, *names]
        dyn.update({name: {0: "batch", 2: f"{name}_h", 3: f"{name}_w"} for name in FEATURE_OUTPUTS})
    buf = io.BytesIO()
    export_module(net, sample, buf, ["input"], names, dyn, opset)
    data = buf.getvalue()
    if path is None:
        return data
    return write_atomic(Path(path), data)


def _cpu_eval_copy(network: nn.Module) -> nn.Module:
    return copy.deepcopy(network).to("cpu").eval()


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (parent folders created)."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
