"""Inference engines behind :class:`featherface.FaceDetector`: the network call, nothing else.

Each runner implements the :class:`featherface.pipeline.Runner` protocol: it maps a batch
``[B, 3, H, W]`` (float32, BGR minus the mean, built by :func:`featherface.pipeline.make_batch` as its
``batch_spec`` asks) to the raw outputs ``(loc, logits, landmarks)``; every other stage of
:mod:`featherface.pipeline` is shared, so every backend produces detections through the same code.

- :class:`TorchRunner` (``"torch"``): a PyTorch module under ``torch.inference_mode``; by default the
  BatchNorm-folded copy of the network (:func:`featherface.fuse.fuse_for_inference`), in
  channels-last memory layout on CPU.
- :class:`OnnxRuntimeRunner` (``"onnxruntime"``): an ONNX Runtime session of the raw graph
  (:func:`featherface.export.export_network_onnx`), CPU execution provider, all graph optimisations,
  worker threads that stop spinning when a run returns. The graph is exported at opset 19 (V1's
  deformable convs as native ``DeformConv``) where the installed ONNX Runtime implements
  ``DeformConv``, else at opset 17 (:func:`backend_opset`).

Both are safe to call from several threads at once (``InferenceSession.run`` is thread-safe).

ONNX files exported for the ONNX Runtime backend are cached in ``$FEATHERFACE_CACHE/onnx/``
(default ``~/.cache/featherface/onnx/``, or ``$XDG_CACHE_HOME/featherface/onnx/``), one file per
weights digest (sha256 of the network's tensors and config), featherface version and opset, so a
second ``load_model(..., backend="onnxruntime")`` with the same weights does not export again.
Randomly initialised networks (``pretrained=False``) are exported to a temporary file instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featherface._version import __version__
from featherface.config import ModelConfig
from featherface.pipeline import BatchSpec, RawOutputs

logger = logging.getLogger(__name__)

__all__ = [
    "SINGLE_THREAD_MAX_PIXELS",
    "torch_threads",
    "make_session",
    "BACKENDS",
    "TorchRunner",
    "OnnxRuntimeRunner",
    "import_onnxruntime",
    "onnx_cache_dir",
    "onnxruntime_has_deform_conv",
    "backend_opset",
    "weights_digest",
    "onnxruntime_runner_for",
]

BACKENDS = ("torch", "onnxruntime")

_ONNX_HINT = 'pip install "featherface[onnx]"'


def import_onnxruntime() -> Any:
    """``import onnxruntime``, or an ``ImportError`` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"the onnxruntime backend needs the onnxruntime package, which is not installed: {_ONNX_HINT}"
        ) from exc
    return onnxruntime


#: On the CPU, a call whose network input holds at most this many pixels (summed over the batch)
#: runs on one torch thread unless ``num_threads`` says otherwise; larger ones use the process's
#: thread count. Chosen by measurement (``benchmarks/shared_machine.py``, docs/concepts.md): two
#: processes that each run torch's default of one thread per core on the same cores slow each other
#: down several times over (OpenMP workers spin-wait for a core the other process holds), while
#: one thread per call loses little alone on inputs of this size.
SINGLE_THREAD_MAX_PIXELS = 1_100_000


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(num_threads)`` and restore the previous count after
    (``None``: leave it). The count is process-wide while the body runs."""
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchRunner:
    """Runs a PyTorch module on ``device`` under ``torch.inference_mode``.

    Args:
        module: the network (eval mode, already on ``device``).
        device: where the batch is moved before the call.
        channels_last: run in channels-last memory layout (``module`` must have been converted).
        num_threads: torch CPU threads for each call (set for the call, then restored). ``None``:
            one thread for inputs of at most :data:`SINGLE_THREAD_MAX_PIXELS` pixels, the process's
            count above (CPU only).
    """

    name = "torch"

    def __init__(self, module: nn.Module, device: torch.device, *, channels_last: bool = False,
                 num_threads: int | None = None) -> None:
        self.module = module
        self.device = device
        self.channels_last = channels_last
        self.num_threads = num_threads
        self.batch_spec = BatchSpec(device=device, channels_last=channels_last)

    def threads_for(self, batch: torch.Tensor) -> int | None:
        """The torch thread count a call on ``batch`` (``[B, 3, H, W]``) runs with (``None``: unchanged)."""
        if self.device.type != "cpu":
            return None
        if self.num_threads is not None:
            return self.num_threads
        pixels = batch.shape[0] * batch.shape[-2] * batch.shape[-1]
        return 1 if pixels <= SINGLE_THREAD_MAX_PIXELS else None

    def __call__(self, batch: torch.Tensor) -> RawOutputs:
        with torch.inference_mode(), torch_threads(self.threads_for(batch)):
            x = batch.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.module(x)


def make_session(model: str | os.PathLike | bytes, *, num_threads: int | None = None,
                 providers: list[str] | None = None, spinning: bool = True) -> Any:
    """An ONNX Runtime ``InferenceSession`` with featherface's settings (all graph optimisations,
    ``num_threads`` intra-op threads, workers that stop spinning when a run returns).

    ``spinning=False`` also stops them spin-waiting *during* a run: slower alone, much faster when
    other processes share the cores (training next to evaluations: a descheduled peer thread makes a
    spinning one burn its time slice).
    """
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads is not None:
        so.intra_op_num_threads = int(num_threads)
    # Worker threads stop spin-waiting as soon as a run returns, instead of competing for the cores
    # with the pre- and postprocessing that follow (measured: same p50, lower p90; docs/benchmarks.md).
    so.add_session_config_entry("session.force_spinning_stop", "1")
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, so, providers=providers or ["CPUExecutionProvider"])


class OnnxRuntimeRunner:
    """Runs the raw ONNX graph (``input`` -> ``loc``, ``logits``, ``landmarks``) with ONNX Runtime.

    Args:
        model: path of the ``.onnx`` file, or its bytes.
        num_threads: intra-op threads of the session (``None``: ONNX Runtime's default, one per core).
        providers: execution providers (default ``["CPUExecutionProvider"]``).
    """

    name = "onnxruntime"
    output_names = ("loc", "logits", "landmarks")
    batch_spec = BatchSpec(fill="numpy")  # single-threaded fill: no torch OpenMP workers next to ORT's

    def __init__(self, model: str | os.PathLike | bytes, *, num_threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        self.path = None if isinstance(model, bytes) else Path(model)
        self.session = make_session(model, num_threads=num_threads, providers=providers)
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = {o.name for o in self.session.get_outputs()}
        if inputs != ["input"] or not set(self.output_names) <= outputs:
            raise ValueError(
                f"{self.path or 'the ONNX model'} is not a featherface raw graph (input 'input', outputs "
                f"{', '.join(self.output_names)}); got inputs {inputs} and outputs {sorted(outputs)} "
                "(a graph exported with --with-postprocess cannot back a FaceDetector)"
            )

    def __call__(self, batch: torch.Tensor) -> RawOutputs:
        x = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        loc, logits, ldm = self.session.run(list(self.output_names), {"input": x})
        return torch.from_numpy(loc), torch.from_numpy(logits), torch.from_numpy(ldm)


# -- the ONNX cache ------------------------------------------------------------------------------------


def onnx_cache_dir() -> Path:
    """``$FEATHERFACE_CACHE/onnx``, else ``$XDG_CACHE_HOME/featherface/onnx``, else ``~/.cache/featherface/onnx``."""
    root = os.environ.get("FEATHERFACE_CACHE")
    if root:
        return Path(root).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "featherface" / "onnx"


def weights_digest(network: nn.Module, config: ModelConfig | None = None) -> str:
    """sha256 over the network's state dict (names, dtypes, shapes, bytes) and its config."""
    h = hashlib.sha256()
    if config is not None:
        h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(network.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _cache_file(network: nn.Module, config: ModelConfig, opset: int) -> Path:
    digest = weights_digest(network, config)
    version = __version__.replace("+", "_")
    return onnx_cache_dir() / f"{config.name}-{digest[:32]}-featherface{version}-opset{opset}.onnx"


@functools.lru_cache(maxsize=1)
def onnxruntime_has_deform_conv() -> bool:
    """Whether the installed ONNX Runtime runs the ONNX ``DeformConv`` operator (opset 19) on the CPU.

    Probed once per process by running a one-node model; releases before its CPU kernel raise
    ``NOT_IMPLEMENTED`` at session creation.
    """
    ort = import_onnxruntime()
    from onnx import TensorProto, helper

    def info(name: str, shape: list[int]) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    node = helper.make_node("DeformConv", ["x", "w", "offset"], ["y"], kernel_shape=[1, 1])
    graph = helper.make_graph([node], "probe", [info("x", [1, 1, 2, 2]), info("w", [1, 1, 1, 1]),
                                                info("offset", [1, 2, 2, 2])], [info("y", [1, 1, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = min(model.ir_version, 9)  # readable by older runtimes
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x, w, off = (np.ones(s, np.float32) for s in ((1, 1, 2, 2), (1, 1, 1, 1), (1, 2, 2, 2)))
        session.run(None, {"x": x, "w": w, "offset": off * 0})
    except Exception:  # noqa: BLE001  (any failure means: do not rely on it)
        return False
    return True


def backend_opset() -> int:
    """The opset of the graphs the ONNX Runtime backend exports: 19 (V1's deformable convs as native
    ``DeformConv``, measured faster) where the installed ONNX Runtime implements ``DeformConv``, else 17."""
    from featherface.export import DEFAULT_OPSET, NATIVE_DEFORM_OPSET

    return NATIVE_DEFORM_OPSET if onnxruntime_has_deform_conv() else DEFAULT_OPSET


def onnxruntime_runner_for(
    network: nn.Module,
    config: ModelConfig,
    *,
    onnx_path: str | os.PathLike | None = None,
    cache: bool = True,
    num_threads: int | None = None,
    opset: int | None = None,
) -> OnnxRuntimeRunner:
    """An :class:`OnnxRuntimeRunner` for ``network``: the given or cached ONNX file, exported if missing.

    ``opset``: of the graph exported when there is none (default :func:`backend_opset`).
    """
    import_onnxruntime()  # fail early, before exporting
    from featherface.export import export_network_onnx

    if opset is None:
        opset = backend_opset()

    if onnx_path is not None:
        path = Path(onnx_path).expanduser()
        if not path.exists():
            export_network_onnx(network, path, opset=opset)
            logger.info("featherface: exported %s to %s", config.name, path)
        return OnnxRuntimeRunner(path, num_threads=num_threads)
    if not cache:
        with tempfile.TemporaryDirectory(prefix="featherface-onnx-") as tmp:
            path = Path(tmp) / f"{config.name}.onnx"
            export_network_onnx(network, path, opset=opset)
            return OnnxRuntimeRunner(path, num_threads=num_threads)  # the session keeps its own copy
    path = _cache_file(network, config, opset)
    if path.exists():
        logger.info("featherface: using cached ONNX graph %s", path)
    else:
        export_network_onnx(network, path, opset=opset)
        logger.info("featherface: exported %s to %s", config.name, path)
    return OnnxRuntimeRunner(path, num_threads=num_threads)
