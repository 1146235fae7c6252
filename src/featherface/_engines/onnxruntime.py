"""The ONNX Runtime engine: an ONNX Runtime session of the raw graph
(:func:`featherface._engines.onnx_export.export_network_onnx`), CPU execution provider, all graph
optimisations, worker threads that stop spinning when a run returns. The graph is exported at opset 19
(V1's deformable convs as native ``DeformConv``) where the installed ONNX Runtime implements
``DeformConv``, else at opset 17 (:func:`backend_opset`). ``InferenceSession.run`` is thread-safe.

ONNX files exported for this engine are cached in ``$FEATHERFACE_CACHE/onnx/``
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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from featherface._cache import featherface_cache_dir
from featherface._engines.base import BatchSpec
from featherface._engines.onnx_export import DEFAULT_OPSET, NATIVE_DEFORM_OPSET, export_network_onnx
from featherface._models.config import ModelConfig
from featherface._version import __version__
from featherface.detection import RAW_OUTPUT_NAMES, RawOutputs

logger = logging.getLogger(__name__)

__all__ = [
    "import_onnxruntime",
    "make_session",
    "OnnxRuntimeRunner",
    "onnx_cache_dir",
    "onnxruntime_has_deform_conv",
    "backend_opset",
    "weights_digest",
    "onnxruntime_runner_for",
]

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
    output_names = RAW_OUTPUT_NAMES
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
    """``<featherface cache>/onnx`` (:func:`featherface._cache.featherface_cache_dir`)."""
    return featherface_cache_dir() / "onnx"


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
