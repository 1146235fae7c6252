"""Network-call latency of ONNX Runtime variants of one model, timed against each other in one process.

    python benchmarks/onnxruntime_variants.py --model v2_ultra --size 640x480 --threads 2
    python benchmarks/onnxruntime_variants.py --model v1 --weights reference_v1 --size 640x480 --threads 2

Variants (each a separate ``InferenceSession`` with the backend's session options: all graph
optimisations, ``--threads`` intra-op threads, worker threads that stop spinning after a run):

- ``backend``: the graph ``load_model(..., backend="onnxruntime")`` runs (opset 19 where the installed
  ONNX Runtime has ``DeformConv``, else 17);
- ``opset17``: the portable opset-17 graph (V1's deformable convs as ``GridSample`` + ``MatMul``);
- ``fixed-shape``: the backend graph with its batch, height and width pinned to the timed input
  (``add_free_dimension_override_by_name``), which lets ONNX Runtime fold the shape computations;
- ``int8-qdq`` / ``int8-qop``: static int8 quantisation of the opset-17 graph with ONNX Runtime's
  quantiser (per-channel int8 weights, uint8 activations, QDQ and QOperator formats), calibrated on
  ``--calib`` images (default: the astronaut photo; the calibration only affects accuracy, which
  this script does not measure).

The input is ``examples/images/astronaut.png`` prepared by the detector at ``--size``. After
``--warmup`` calls of each, ``--runs`` rounds call every variant once, in turn, so background load
affects them alike; the median and p90 per variant are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _ort_common import IMAGE, add_detector_arguments, load_ort_detector, prepared_input

from featherface._engines.onnx_export import DEFAULT_OPSET, export_network_onnx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_detector_arguments(ap, runs=40, warmup=8)
    ap.add_argument("--calib", nargs="*", default=[str(IMAGE)], help="calibration images for int8")
    ap.add_argument("--variants", nargs="+", default=["backend", "opset17", "fixed-shape", "int8-qdq", "int8-qop"])
    args = ap.parse_args(argv)

    import onnxruntime as ort

    det = load_ort_detector(args)
    w, h = args.size

    def prepared(path: str) -> np.ndarray:
        return prepared_input(det, path, (w, h))

    x = prepared(str(IMAGE))
    base_opts = det.runner.session.get_session_options()

    def session(model: str | bytes, fixed: bool = False) -> Any:
        so = ort.SessionOptions()
        so.graph_optimization_level = base_opts.graph_optimization_level
        so.intra_op_num_threads = args.threads
        so.add_session_config_entry("session.force_spinning_stop", "1")
        if fixed:
            for name, value in (("batch", 1), ("height", h), ("width", w)):
                so.add_free_dimension_override_by_name(name, value)
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    sessions: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        opset17 = Path(tmp) / "opset17.onnx"
        export_network_onnx(det.network, opset17, opset=DEFAULT_OPSET)
        for name in args.variants:
            if name == "backend":
                sessions[name] = session(str(det.runner.path))
            elif name == "opset17":
                sessions[name] = session(str(opset17))
            elif name == "fixed-shape":
                sessions[name] = session(str(det.runner.path), fixed=True)
            elif name in ("int8-qdq", "int8-qop"):
                from onnxruntime.quantization import (
                    CalibrationDataReader,
                    QuantFormat,
                    QuantType,
                    quant_pre_process,
                    quantize_static,
                )

                class Reader(CalibrationDataReader):  # type: ignore[misc]
                    def __init__(self) -> None:
                        self.items = iter(args.calib)

                    def get_next(self) -> dict[str, np.ndarray] | None:
                        path = next(self.items, None)
                        return None if path is None else {"input": prepared(path)}

                pre = Path(tmp) / "pre.onnx"
                if not pre.exists():
                    quant_pre_process(str(opset17), str(pre))
                out = Path(tmp) / f"{name}.onnx"
                fmt = QuantFormat.QDQ if name == "int8-qdq" else QuantFormat.QOperator
                with contextlib.redirect_stdout(io.StringIO()):  # the quantiser prints shape protos
                    quantize_static(str(pre), str(out), Reader(), quant_format=fmt, per_channel=True,
                                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
                sessions[name] = session(str(out))
            else:
                ap.error(f"unknown variant {name!r}")

        for s in sessions.values():
            for _ in range(args.warmup):
                s.run(None, {"input": x})
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(args.runs):
            for k, s in sessions.items():
                t0 = time.perf_counter()
                s.run(None, {"input": x})
                times[k].append((time.perf_counter() - t0) * 1000)

    print(f"{args.model} ({det.weights_source} weights), ONNX Runtime {ort.__version__}, {w}x{h}, "
          f"{args.threads} intra-op thread(s), {args.runs} interleaved rounds after {args.warmup} warm-up calls\n")
    print("| variant | network p50 ms | p90 ms | vs backend |")
    print("|---|---:|---:|---:|")
    ref = statistics.median(times["backend"]) if "backend" in times else None
    for k, t in times.items():
        p50, p90 = statistics.median(t), float(np.percentile(t, 90))
        rel = f"{p50 / ref:.2f}x" if ref else ""
        print(f"| {k} | {p50:.2f} | {p90:.2f} | {rel} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
