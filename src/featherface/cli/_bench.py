"""``featherface bench``: the command line of :mod:`featherface._bench` (end-to-end latency and memory)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from featherface import _bench as bench
from featherface.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CLIError

__all__ = ["register", "parse_size", "onnxruntime_available"]

_ORT_MISSING = 'onnxruntime is not installed (pip install "featherface[onnx]")'


def onnxruntime_available() -> bool:
    """Whether ``import onnxruntime`` works in this environment."""
    try:
        importlib.import_module("onnxruntime")
    except ImportError:
        return False
    return True


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench", help="time detection end to end (preprocess / network / postprocess) and peak memory",
        description="Time each model x backend x size x threads configuration in a fresh subprocess: p50/p90 "
                    "latency of preprocessing, the network and postprocessing, detections count and peak RSS. "
                    "See docs/benchmarks.md.",
    )
    p.add_argument("--models", nargs="+", metavar="NAME", default=list(bench.DEFAULT_MODELS),
                   help=f"models to time (default: {' '.join(bench.DEFAULT_MODELS)})")
    p.add_argument("--backends", nargs="+", metavar="B", choices=bench.DEFAULT_BACKENDS, default=None,
                   help=f"inference backends (default: {' '.join(bench.DEFAULT_BACKENDS)}; onnxruntime is left "
                        "out, with a note, when it is not installed)")
    p.add_argument("--sizes", nargs="+", metavar="WxH", type=parse_size,
                   default=[parse_size(s) for s in bench.DEFAULT_SIZES],
                   help=f"input sizes, width x height (default: {' '.join(bench.DEFAULT_SIZES)})")
    p.add_argument("--threads", nargs="+", metavar="N", type=int, default=list(bench.DEFAULT_THREADS),
                   help=f"CPU thread counts (num_threads=) (default: {' '.join(map(str, bench.DEFAULT_THREADS))})")
    p.add_argument("--runs", metavar="N", type=int, default=30, help="timed runs per configuration (default 30)")
    p.add_argument("--warmup", metavar="N", type=int, default=5, help="untimed warm-up runs (default 5)")
    p.add_argument("--weights", nargs="+", metavar="NAME=PATH", default=[],
                   help="weights folder or .safetensors file for a model (e.g. v1=reference_v1); default: the "
                        "model's published weights, or a seeded random network for a model without any")
    p.add_argument("--json-out", metavar="FILE", default=None, help="write the full report as JSON")
    p.add_argument("--md-out", metavar="FILE", default=None, help="write the Markdown table")
    p.set_defaults(func=_cmd_bench)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT (e.g. 640x480), got {text!r}") from None


def _cmd_bench(args: argparse.Namespace) -> int:
    from featherface._weights.registry import get_spec

    for name in args.models:  # UnknownModelError (exit 2) before any worker starts
        get_spec(name)
    if args.runs < 1 or args.warmup < 0 or any(n < 1 for n in args.threads):
        raise CLIError("--runs and --threads must be >= 1, --warmup >= 0", EXIT_USAGE)
    weights: dict[str, str] = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or name not in args.models or not path:
            raise CLIError(f"--weights takes NAME=PATH for one of the timed models, got {item!r}", EXIT_USAGE)
        if not Path(path).exists():
            raise CLIError(f"--weights {name}: {path} does not exist", EXIT_USAGE)
        weights[name] = str(Path(path).resolve())
    notes: list[str] = []
    backends = list(args.backends) if args.backends is not None else list(bench.DEFAULT_BACKENDS)
    if "onnxruntime" in backends and not onnxruntime_available():
        if args.backends is not None:  # asked for by name: an error, not a silent skip
            raise CLIError(f"--backends onnxruntime: {_ORT_MISSING}")
        backends.remove("onnxruntime")
        notes.append(f"ONNX Runtime rows skipped: {_ORT_MISSING}")
        print(f"featherface bench: note: {notes[-1]}", file=sys.stderr)
    args.backends = backends
    report = bench.run_benchmark(args.models, args.backends, args.sizes, args.threads, args.runs, args.warmup,
                                 weights=weights)
    if notes:
        report["notes"] = notes
    report["command"] = "featherface bench " + " ".join(
        [f"--models {' '.join(args.models)}", f"--backends {' '.join(args.backends)}",
         f"--sizes {' '.join(f'{w}x{h}' for w, h in args.sizes)}", f"--threads {' '.join(map(str, args.threads))}",
         f"--runs {args.runs}", f"--warmup {args.warmup}"]
        + ([f"--weights {' '.join(args.weights)}"] if args.weights else []))
    table = bench.markdown_table(report)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    if args.md_out:
        Path(args.md_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md_out).write_text(table)
    print(table, end="")
    failed = sum("error" in r for r in report["results"])
    return EXIT_FAILURE if failed else EXIT_OK
