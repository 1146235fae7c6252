"""``featherface bench``: end-to-end CPU latency and peak memory of the detectors.

For every configuration (model x backend x input size x threads) the benchmark starts a **fresh
Python subprocess** (``python -m featherface._bench --worker CONFIG``), which loads the detector with
:func:`featherface.load_model` (``device="cpu"``, ``num_threads=N``), runs ``--warmup`` untimed
calls and then ``--runs`` timed calls on one fixed image, and reports:

- latency, p50 and p90 in milliseconds, of each stage and of the whole call, each timed with
  ``time.perf_counter`` around the stage functions of :mod:`featherface.pipeline` that the
  detector's own pipeline runs (nothing is reimplemented):

  - ``preprocess``: ``preprocess`` (image to BGR array, resize if options ask) + ``make_batch``
    (float32, mean subtraction, NCHW / channels-last, as the runner's ``batch_spec`` asks);
  - ``network``: the detector's runner (the backend);
  - ``postprocess``: ``postprocess`` (score threshold, decoding against the priors, NMS) +
    ``to_original`` (back to original-image pixels, :class:`Detection` objects);
  - ``total``: the sum per call (its percentiles are taken over calls, not summed);

- the number of detections (score threshold 0.5, the default), which drives the NMS cost;
- peak memory: the RSS high-water mark of the worker process (``resource.getrusage(RUSAGE_SELF)
  .ru_maxrss``), so it includes the interpreter, torch/onnxruntime and the loaded model; also the
  high-water mark just before the warm-up (``VmHWM``), so the difference is what inference added.

The image is the astronaut photo that ships in the package (``featherface/assets/astronaut.png``,
public domain; a fixed seeded noise image when absent) resized to each ``WxH`` beforehand, so the
detector runs at that size.
Models with packaged weights (``v2_ultra``) use them; models without (``v1``) use a network
initialised with ``torch.manual_seed(0)`` (``pretrained=False``): speed does not depend on the
weight values, but the number of candidate boxes does, so the detection count is reported.
For ``onnxruntime`` the raw ONNX graph of each model is exported once, in its own subprocess,
before the timed workers start (the export's memory does not count against a configuration).

The command line (flags, checks, output files) is :mod:`featherface.cli._bench`.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_BACKENDS",
    "DEFAULT_SIZES",
    "DEFAULT_THREADS",
    "STAGES",
    "IMAGE",
    "run_worker",
    "machine_info",
    "markdown_table",
    "run_benchmark",
]

DEFAULT_MODELS = ("v1", "v2_ultra")
DEFAULT_BACKENDS = ("torch", "onnxruntime")
DEFAULT_SIZES = ("320x240", "640x480", "1280x720")
DEFAULT_THREADS = (1, 2)
STAGES = ("preprocess", "network", "postprocess", "total")
IMAGE = Path(__file__).resolve().parent / "assets" / "astronaut.png"
"""The benchmark photo, shipped in the wheel (public domain, see ``assets/README.md``)."""


# -- worker (runs in a fresh subprocess per configuration) -----------------------------------------


def _vm_hwm_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _image(width: int, height: int) -> Any:
    import cv2
    import numpy as np

    from featherface.io import read_image_file

    img = read_image_file(IMAGE) if IMAGE.exists() else None
    if img is None:
        img = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    interp = cv2.INTER_AREA if width * height < img.shape[0] * img.shape[1] else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(img, (width, height), interpolation=interp))


def _load(cfg: dict[str, Any]) -> Any:
    import torch

    from featherface._api import load_model
    from featherface.errors import WeightsError

    engine = {"device": "cpu", "backend": cfg["backend"], "num_threads": cfg["threads"],
              "onnx_path": cfg.get("onnx_path")}
    torch.manual_seed(0)
    if cfg.get("weights"):  # --weights NAME=PATH
        return load_model(cfg["model"], weights=cfg["weights"], **engine)
    try:  # packaged (or cached) weights when the model has them; never the network
        return load_model(cfg["model"], local_files_only=True, **engine)
    except WeightsError:
        torch.manual_seed(0)
        return load_model(cfg["model"], pretrained=False, **engine)


def _percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(values) * 1000.0
    return {"p50": round(float(np.percentile(a, 50)), 3), "p90": round(float(np.percentile(a, 90)), 3),
            "min": round(float(a.min()), 3), "mean": round(float(a.mean()), 3)}


def run_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Benchmark one configuration in this process (call it in a fresh process: it sets threads)."""
    import resource

    if cfg.get("export_only"):
        _load(cfg)
        return {"exported": cfg.get("onnx_path")}
    det = _load(cfg)
    frame = _image(cfg["width"], cfg["height"])
    from featherface.pipeline import make_batch, postprocess, preprocess, to_original

    runner, config, opts = det.runner, det.config, det.options
    hwm_before = _vm_hwm_kib()
    pc = time.perf_counter
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    n_det = -1
    for i in range(cfg["warmup"] + cfg["runs"]):
        t0 = pc()
        prepared = preprocess(frame, opts, color="bgr")
        batch = make_batch([prepared.image], config.mean_bgr, runner.batch_spec)
        t1 = pc()
        raw = runner(batch)
        t2 = pc()
        size = prepared.network_size
        dets = to_original(postprocess(raw, size, config.priors, opts)[0], size, prepared.original_size)
        t3 = pc()
        n_det = len(dets)
        if i >= cfg["warmup"]:
            for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                times[stage].append(dt)
    if n_det != len(det.detect(frame, color="bgr")):  # the stages add up to what detect() does
        raise RuntimeError("staged pipeline and detect() disagree on the number of detections")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    import torch

    # the torch runner sets its thread count per call (featherface._engines.torch_runner.TorchRunner.threads_for)
    threads_for = getattr(det.runner, "threads_for", None)
    call_threads = threads_for(batch) if threads_for is not None else None

    return {
        "model": cfg["model"], "backend": det.backend, "size": f"{cfg['width']}x{cfg['height']}",
        "width": cfg["width"], "height": cfg["height"], "threads": cfg["threads"],
        "torch_threads": call_threads if call_threads is not None else torch.get_num_threads(),
        "weights": det.weights_source,
        "runs": cfg["runs"], "warmup": cfg["warmup"], "detections": n_det,
        "latency_ms": {stage: _percentiles(v) for stage, v in times.items()},
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "peak_rss_before_runs_mb": round(hwm_before / 1024, 1) if hwm_before is not None else None,
    }


def _worker_main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--worker":
        sys.stderr.write("usage: python -m featherface._bench --worker CONFIG_JSON (internal; use 'featherface bench')\n")
        return 2
    result = run_worker(json.loads(argv[1]))
    sys.stdout.write("FEATHERFACE_BENCH_RESULT " + json.dumps(result) + "\n")
    return 0


# -- driver -------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine_info() -> dict[str, Any]:
    """CPU model, cores and library versions of this machine."""
    import cv2
    import numpy as np
    import torch

    cpu = cpu_model()
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    from featherface._version import __version__

    return {
        "cpu": cpu, "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "featherface": __version__, "torch": torch.__version__, "onnxruntime": ort_version,
        "opencv": cv2.__version__, "numpy": np.__version__,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }


def _spawn(cfg: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "featherface._bench", "--worker", json.dumps(cfg)],
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("FEATHERFACE_BENCH_RESULT "):
            return json.loads(line.split(" ", 1)[1])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"worker exited with status {proc.returncode}: {tail}")


def _fmt(stat: dict[str, float]) -> str:
    return f"{stat['p50']:.2f} / {stat['p90']:.2f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table (p50 / p90 ms per stage), with the machine line above it."""
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores ({m['logical_cores']} logical); "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, OpenCV {m['opencv']}, numpy {m['numpy']}, "
        f"Python {m['python']}. {report['settings']['runs']} timed runs after {report['settings']['warmup']} "
        "warm-up runs per row; latency in ms as p50 / p90; peak RSS = `ru_maxrss` of a fresh process per row.",
        "",
        "| model | backend | size (WxH) | threads | weights | faces | preprocess | network | postprocess "
        "| **end to end** | peak RSS MB |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | {r['size']} | {r['threads']} | | | "
                         f"error: {r['error']} | | | | |")
            continue
        lat = r["latency_ms"]
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['size']} | {r['threads']} | {r['weights']} | {r['detections']} "
            f"| {_fmt(lat['preprocess'])} | {_fmt(lat['network'])} | {_fmt(lat['postprocess'])} "
            f"| **{_fmt(lat['total'])}** | {r['peak_rss_mb']:.0f} |"
        )
    notes = report.get("notes") or []
    if notes:
        lines += [""] + [f"Note: {note}." for note in notes]
    return "\n".join(lines) + "\n"


def run_benchmark(models: list[str], backends: list[str], sizes: list[tuple[int, int]], threads: list[int],
                  runs: int, warmup: int, *, weights: dict[str, str] | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Run every configuration, each in a fresh subprocess; returns the JSON-able report.

    ``weights``: model name -> weights folder or file for the models that should not run their
    published (or, without any, random) weights.
    """
    weights = dict(weights or {})
    started = time.time()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="featherface-bench-") as tmp:
        onnx_paths: dict[str, str] = {}
        if "onnxruntime" in backends:  # export each raw graph once, outside the measured processes
            for model in models:
                path = str(Path(tmp) / f"{model}.onnx")
                try:
                    _spawn({"model": model, "backend": "onnxruntime", "threads": 1, "onnx_path": path,
                            "export_only": True, "weights": weights.get(model)})
                    onnx_paths[model] = path
                except RuntimeError as exc:
                    if progress:
                        sys.stderr.write(f"featherface bench: ONNX export of {model} failed: {exc}\n")
        for model, backend, (w, h), n in itertools.product(models, backends, sizes, threads):
            cfg: dict[str, Any] = {"model": model, "backend": backend, "width": w, "height": h, "threads": n,
                                   "runs": runs, "warmup": warmup, "weights": weights.get(model)}
            if backend == "onnxruntime":
                cfg["onnx_path"] = onnx_paths.get(model)
            t0 = time.time()
            try:
                r = _spawn(cfg)
            except (RuntimeError, subprocess.SubprocessError) as exc:
                r = {"model": model, "backend": backend, "size": f"{w}x{h}", "threads": n, "error": str(exc)}
            results.append(r)
            if progress:
                msg = (f"error: {r['error']}" if "error" in r else
                       f"end to end p50 {r['latency_ms']['total']['p50']:.2f} ms, {r['detections']} faces")
                sys.stderr.write(f"featherface bench: {model} {backend} {w}x{h} {n} thread(s): {msg} "
                                 f"({time.time() - t0:.1f} s)\n")
    return {
        "machine": machine_info(),
        "settings": {"runs": runs, "warmup": warmup, "image": IMAGE.name, "score_threshold": 0.5,
                     "memory": "ru_maxrss (RSS high-water) of a fresh subprocess per configuration",
                     "stages": {"preprocess": "preprocess + make_batch", "network": "runner",
                                "postprocess": "postprocess + to_original"}},
        "wall_s": round(time.time() - started, 1),
        "results": results,
    }


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
