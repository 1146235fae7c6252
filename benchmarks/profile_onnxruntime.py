"""Where the ONNX Runtime backend spends its network time: per-operator and per-module profile.

    python benchmarks/profile_onnxruntime.py --model v2_ultra --size 640x480 --threads 2
    python benchmarks/profile_onnxruntime.py --model v1 --weights reference_v1 --size 640x480 --threads 2

The detector is loaded exactly as ``featherface.load_model(name, backend="onnxruntime",
num_threads=N)`` builds it (same exported graph, same session options). The script then opens a
second session of that graph with ONNX Runtime's built-in profiler on, runs ``--warmup`` untimed and
``--runs`` profiled calls on ``examples/images/astronaut.png`` prepared by the detector itself
(resized to ``--size``), and sums each node's kernel time (the profiler's ``*_kernel_time`` events
of the profiled calls only) by

- operator type (``Conv``, ``Mul``, ``ReduceMax``...; ``Reorder*`` are ONNX Runtime's layout
  conversions between its blocked NCHWc convolution layout and plain NCHW), and
- network module (the first one or two components of the node name, which the exporter derives
  from the PyTorch module path, e.g. ``backbone/stage1``, ``backbone_attention/spatial_gate``;
  repeated calls of one module, named ``spatial_gate_1``, ``spatial_gate_2``..., are summed).

Per-node profiling adds overhead, so the profiled total is larger than the unprofiled network time,
which is printed too (median of ``--runs`` calls in the plain session). Read the shares, not the
absolute profiled milliseconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _ort_common import IMAGE, add_detector_arguments, load_ort_detector, prepared_input


def _table(title: str, rows: list[tuple[str, float, int]], total: float, runs: int, top: int) -> str:
    lines = [f"| {title} | ms per call (profiled) | share | nodes |", "|---|---:|---:|---:|"]
    for name, us, n in rows[:top]:
        lines.append(f"| {name} | {us / runs / 1000:.3f} | {100 * us / total:.1f}% | {n // runs} |")
    rest = rows[top:]
    if rest:
        us = sum(r[1] for r in rest)
        lines.append(f"| (other {len(rest)}) | {us / runs / 1000:.3f} | {100 * us / total:.1f}% | |")
    lines.append(f"| **total** | **{total / runs / 1000:.3f}** | 100% | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_detector_arguments(ap, runs=30, warmup=5)
    ap.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    ap.add_argument("--depth", type=int, default=2, help="module-name components to group by (default 2)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    det = load_ort_detector(args)
    w, h = args.size
    x = prepared_input(det, IMAGE, (w, h))

    plain = det.runner.session
    for _ in range(args.warmup):
        plain.run(None, {"input": x})
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        plain.run(None, {"input": x})
        times.append(time.perf_counter() - t0)
    network_ms = statistics.median(times) * 1000

    so = plain.get_session_options()
    with tempfile.TemporaryDirectory() as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(det.runner.path), so, providers=["CPUExecutionProvider"])
        for _ in range(args.warmup):
            sess.run(None, {"input": x})
        marks = []
        for _ in range(args.runs):
            marks.append(time.perf_counter())
            sess.run(None, {"input": x})
        events = json.loads(Path(sess.end_profiling()).read_text())

    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    first = sorted(e["ts"] for e in runs)[args.warmup] if len(runs) > args.warmup else 0
    by_op: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    n_op: collections.Counter[str] = collections.Counter()
    n_module: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < first:
            continue
        op = e["args"]["op_name"]
        parts = [re.sub(r"_\d+$", "", p) for p in e["name"][: -len("_kernel_time")].strip("/").split("/")]
        module = "/".join(parts[: args.depth]) if len(parts) > 1 else "(between modules: reorders, shapes, fusions)"
        by_op[op] += e["dur"]
        n_op[op] += 1
        by_module[module] += e["dur"]
        n_module[module] += 1
    total = float(sum(by_op.values()))
    if not total:
        sys.stderr.write("no kernel events in the profile\n")
        return 1
    header = (f"{args.model} ({det.weights_source} weights), ONNX Runtime {ort.__version__}, {w}x{h}, "
              f"{args.threads} intra-op thread(s), graph {det.runner.path.name}: network median "
              f"{network_ms:.2f} ms unprofiled over {args.runs} calls")
    print(header + "\n")
    print(_table("operator", [(k, v, n_op[k]) for k, v in by_op.most_common()], total, args.runs, args.top))
    print()
    print(_table("module", [(k, v, n_module[k]) for k, v in by_module.most_common()], total, args.runs, args.top))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "header": header, "network_ms_unprofiled": network_ms, "runs": args.runs,
            "model": args.model, "weights_source": det.weights_source, "onnxruntime": ort.__version__,
            "size": [w, h], "threads": args.threads, "graph": det.runner.path.name,
            "by_operator_us": dict(by_op), "by_module_us": dict(by_module),
            "nodes_by_operator": dict(n_op), "nodes_by_module": dict(n_module)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
