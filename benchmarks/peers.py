"""CPU latency of featherface ``v2_ultra`` next to peer face detectors that install offline from PyPI.

Compares, in ONE process and on the same pixels, featherface ``v2_ultra`` (packaged weights, torch
and ONNX Runtime backends) with every peer detector importable in the current environment whose
weights ship inside its PyPI wheel (nothing is downloaded at run time):

==================  ==========================================================================
``haar``            OpenCV Haar cascade ``haarcascade_frontalface_default.xml`` (opencv 4.x; OpenCV
                    5 removed ``cv2.CascadeClassifier``), ``detectMultiScale(gray,
                    scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))`` on the grayscale image.
``mtcnn``           ``facenet_pytorch.MTCNN(keep_all=True, device="cpu")`` (defaults: min_face_size
                    20, thresholds (0.6, 0.7, 0.7), factor 0.709), ``mtcnn.detect(rgb)``.
``mediapipe-short`` MediaPipe BlazeFace, legacy ``mediapipe.solutions.face_detection.FaceDetection(
                    model_selection=0, min_detection_confidence=0.5)`` (short range, 128x128 input,
                    faces within ~2 m), ``.process(rgb)``.  mediapipe 0.10.21 is the last release
                    with this API and the .tflite models inside the wheel.
``mediapipe-full``  the same with ``model_selection=1`` (full range, 192x192 input, sparse model).
==================  ==========================================================================

featherface rows: ``featherface.load_model("v2_ultra", device="cpu", backend=B, num_threads=T)`` for
B in ``torch`` and ``onnxruntime``, ``detector.detect(rgb)`` with its default options (score > 0.5,
original resolution).  A peer that cannot be loaded is reported as ``skipped: <reason>``.

Method
------
* Images: ``--images`` files and/or folders (a folder contributes its image files, sorted by name;
  ``--limit N`` keeps the first N), default ``examples/images/astronaut.png``.  Each image is read
  with ``cv2.imread`` and resized with ``cv2.resize`` to ``--size WxH`` (default 640x480, ``native``
  keeps each image's size; aspect ratio is not preserved), so every detector sees identical pixels.
* Input format: each detector gets what its API wants: a C-contiguous RGB ``uint8`` array
  (featherface, MTCNN, MediaPipe) or the grayscale image (Haar).  These conversions are made once,
  before timing, for all detectors alike; the timed region is only the detect call
  (``time.perf_counter()`` right before and after it), which includes each detector's own
  preprocessing, network and post-processing/NMS.
* Threads: ``--threads T`` (default 2) sets ``torch.set_num_threads(T)`` (featherface torch, MTCNN),
  ``cv2.setNumThreads(T)`` (Haar) and featherface's ``num_threads`` (ONNX Runtime intra-op threads).
  The legacy MediaPipe solution API has no thread setting: its TFLite/XNNPACK graph uses its own
  default, which on desktop Linux is one thread (CPU time = wall time in the report).  Set
  ``OMP_NUM_THREADS`` as well to pin OpenMP pools (the header records it).
* Schedule: ``--warmup`` untimed rounds, then ``--runs`` timed rounds.  A round calls every
  detector once on every image; detectors are interleaved image by image and their order is rotated
  every round, so background load and cache effects hit all of them alike.
* Report: per detector the p50 and p90 of all timed calls (ms per image, pooled over images and
  rounds), the p50 of the process CPU time (``time.process_time``, all threads) during the same
  calls (CPU / wall = the parallelism the detector actually used), the faces found on each image
  (at the detector's default/typical threshold, counted on the first call, outside the timed
  region), and the ratios ``p50 / featherface ONNX Runtime p50``
  and ``p50 / featherface torch p50`` (> 1: slower than featherface).  A markdown table is printed;
  ``--md-out`` and ``--json-out`` write it and the full data (all timings, per-image p50s, header).
  The header lists the CPU model, usable cores, threads and the versions of the relevant packages.
  Ratios are only meaningful within one run (one process); compare environments through them.

Environments
------------
The peers' pins conflict with each other and with the project's torch, so each peer gets its own
virtual environment built from ``benchmarks/peers/NAME.txt`` (see the comments there); each also
has featherface (editable, onnx extra) and OpenCV 4.x, so the featherface and Haar rows run in
every one of them::

    benchmarks/peers/make_env.sh haar        # .venv-peers-haar/:      featherface + Haar
    benchmarks/peers/make_env.sh mtcnn       # .venv-peers-mtcnn/:     + facenet-pytorch 2.6.0 (MTCNN) + Haar
    benchmarks/peers/make_env.sh mediapipe   # .venv-peers-mediapipe/: + mediapipe 0.10.21 (BlazeFace) + Haar

    OMP_NUM_THREADS=2 .venv-peers-mtcnn/bin/python benchmarks/peers.py --threads 2 \\
        --json-out peers-mtcnn.json --md-out peers-mtcnn.md
    OMP_NUM_THREADS=2 .venv-peers-mediapipe/bin/python benchmarks/peers.py --threads 2 \\
        --images /path/to/widerface/val/images/0--Parade --limit 10

Each environment is a fresh venv of the PyPI torch wheel (~6 GB with its CUDA libraries) and
took about a minute to build on the 2-core dev machine with a warm package cache.  In the
mtcnn environment ``pip check`` reports facenet-pytorch's ignored version caps; that is expected.

``python benchmarks/peers.py --list`` shows which detectors load in the current environment.
With only featherface installed the script runs the two featherface rows, plus Haar if OpenCV is
4.x (a fresh ``pip install featherface`` now gets OpenCV 5, where Haar is reported as skipped);
the other peers are listed as skipped.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO / "examples" / "images" / "astronaut.png"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
FF_ORT = "featherface-v2_ultra-onnxruntime"
FF_TORCH = "featherface-v2_ultra-torch"
ALL_DETECTORS = (FF_ORT, FF_TORCH, "haar", "mtcnn", "mediapipe-short", "mediapipe-full")
HAAR_PARAMS: dict[str, Any] = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (20, 20)}
VERSION_DISTS = ("numpy", "opencv-python-headless", "opencv-python", "opencv-contrib-python", "torch",
                 "torchvision", "onnxruntime", "featherface", "facenet-pytorch", "mediapipe", "Pillow",
                 "protobuf")


@dataclass
class Detector:
    """A loaded detector: ``call`` is the timed detect call, ``count`` turns its result into a face count."""

    name: str
    input_kind: str  # "rgb" or "gray"
    call: Callable[[Any], Any]
    count: Callable[[Any], int]
    settings: str
    times: list[list[float]] = field(default_factory=list)  # [image][run] wall seconds
    cpu_times: list[list[float]] = field(default_factory=list)  # [image][run] process CPU seconds
    faces: list[int | None] = field(default_factory=list)


# --------------------------------------------------------------------------------------- loaders

def load_featherface(backend: str, threads: int) -> Detector:
    import featherface

    det = featherface.load_model("v2_ultra", device="cpu", backend=backend, num_threads=threads,
                                 local_files_only=True)
    name = FF_ORT if backend == "onnxruntime" else FF_TORCH
    return Detector(name, "rgb", det.detect, len,
                    f"load_model('v2_ultra', backend={backend!r}, num_threads={threads}) "
                    f"[{getattr(det, 'weights_source', '?')} weights]; detect(rgb), score > 0.5")


def find_haar_cascade(cv2: Any) -> Path:
    """``haarcascade_frontalface_default.xml`` from ``cv2.data``, else anywhere in the cv2 package."""
    fname = "haarcascade_frontalface_default.xml"
    data = getattr(cv2, "data", None)
    if data is not None and getattr(data, "haarcascades", None):
        p = Path(data.haarcascades) / fname
        if p.is_file():
            return p
    for p in sorted(Path(cv2.__file__).resolve().parent.rglob(fname)):
        return p
    raise FileNotFoundError(f"{fname} is not in this OpenCV ({cv2.__version__}) package")


def load_haar(threads: int) -> Detector:
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise ImportError(f"OpenCV {cv2.__version__} has no cv2.CascadeClassifier (removed in OpenCV 5); "
                          "use opencv-python-headless<5 (benchmarks/peers/haar.txt)")
    path = find_haar_cascade(cv2)
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"cannot load {path}")
    cv2.setNumThreads(threads)

    def call(gray: Any) -> Any:
        return cascade.detectMultiScale(gray, **HAAR_PARAMS)

    return Detector("haar", "gray", call, len,
                    f"{path.name}; detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20)), "
                    f"cv2.setNumThreads({threads})")


def load_mtcnn(threads: int) -> Detector:
    import torch
    from facenet_pytorch import MTCNN

    torch.set_num_threads(threads)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    mtcnn.eval()

    def call(rgb: Any) -> Any:
        with torch.inference_mode():
            return mtcnn.detect(rgb)

    def count(out: Any) -> int:
        boxes = out[0]
        return 0 if boxes is None else len(boxes)

    return Detector("mtcnn", "rgb", call, count,
                    "facenet_pytorch.MTCNN(keep_all=True, device='cpu') [min_face_size=20, "
                    "thresholds=(0.6, 0.7, 0.7), factor=0.709]; detect(rgb)")


def load_mediapipe(model_selection: int) -> Detector:
    from mediapipe.python.solutions import face_detection  # the legacy API (mediapipe <= 0.10.21)

    fd = face_detection.FaceDetection(model_selection=model_selection, min_detection_confidence=0.5)

    def count(out: Any) -> int:
        return 0 if out.detections is None else len(out.detections)

    kind = "short range" if model_selection == 0 else "full range"
    return Detector(f"mediapipe-{'short' if model_selection == 0 else 'full'}", "rgb", fd.process, count,
                    f"solutions.face_detection.FaceDetection(model_selection={model_selection}, "
                    f"min_detection_confidence=0.5) [{kind}]; process(rgb), own threads")


def load_detectors(names: Sequence[str], threads: int) -> tuple[list[Detector], dict[str, str]]:
    loaders: dict[str, Callable[[], Detector]] = {
        FF_ORT: lambda: load_featherface("onnxruntime", threads),
        FF_TORCH: lambda: load_featherface("torch", threads),
        "haar": lambda: load_haar(threads),
        "mtcnn": lambda: load_mtcnn(threads),
        "mediapipe-short": lambda: load_mediapipe(0),
        "mediapipe-full": lambda: load_mediapipe(1),
    }
    loaded: list[Detector] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            loaded.append(loaders[name]())
        except Exception as exc:  # noqa: BLE001 - any failure to load a peer is reported, not fatal
            skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return loaded, skipped


# ---------------------------------------------------------------------------------------- images

def parse_size(text: str) -> tuple[int, int] | None:
    if text.lower() in ("native", "none", "0"):
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be WxH or 'native', got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"--size must be positive, got {text!r}")
    return w, h


def expand_images(items: Sequence[str], limit: int | None) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            paths.append(p)
        else:
            raise SystemExit(f"peers.py: no such image file or folder: {item}")
    if limit is not None:
        paths = paths[:limit]
    if not paths:
        raise SystemExit("peers.py: no images")
    return paths


def load_images(paths: Sequence[Path], size: tuple[int, int] | None) -> dict[str, list[Any]]:
    """``{"rgb": [...], "gray": [...]}``: the same resized pixels in each detector's input format."""
    import cv2
    import numpy as np

    out: dict[str, list[Any]] = {"rgb": [], "gray": []}
    for p in paths:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"peers.py: cannot read image {p}")
        if size is not None and (bgr.shape[1], bgr.shape[0]) != size:
            shrink = size[0] * size[1] < bgr.shape[0] * bgr.shape[1]
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out["rgb"].append(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        out["gray"].append(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)))
    return out


# ----------------------------------------------------------------------------------------- timing

def run_benchmark(detectors: list[Detector], inputs: dict[str, list[Any]], warmup: int, runs: int,
                  failed: dict[str, str]) -> list[Detector]:
    """Interleaved rounds; returns the detectors that ran to the end (failures go to ``failed``)."""
    n_images = len(inputs["rgb"])
    for d in detectors:
        d.times = [[] for _ in range(n_images)]
        d.cpu_times = [[] for _ in range(n_images)]
        d.faces = [None] * n_images
    active = list(detectors)
    for rnd in range(warmup + runs):
        if rnd == warmup:
            gc.collect()
        shift = rnd % len(active) if active else 0
        order = active[shift:] + active[:shift]
        for i in range(n_images):
            for d in order:
                if d not in active:
                    continue
                x = inputs[d.input_kind][i]
                try:
                    c0 = time.process_time()
                    t0 = time.perf_counter()
                    out = d.call(x)
                    t1 = time.perf_counter()
                    c1 = time.process_time()
                except Exception as exc:  # noqa: BLE001
                    failed[d.name] = f"failed while running: {type(exc).__name__}: {exc}"
                    active.remove(d)
                    continue
                if rnd >= warmup:
                    d.times[i].append(t1 - t0)
                    d.cpu_times[i].append(c1 - c0)
                if d.faces[i] is None:
                    d.faces[i] = d.count(out)
    return active


def percentile_ms(samples: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(samples) * 1000.0, q))


# ----------------------------------------------------------------------------------------- header

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in VERSION_DISTS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if "cv2" in sys.modules:
        out["cv2 (imported)"] = sys.modules["cv2"].__version__
    return out


# ----------------------------------------------------------------------------------------- report

def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def fmt_faces(faces: Sequence[int | None]) -> str:
    vals = ["?" if f is None else str(f) for f in faces]
    if len(vals) == 1:
        return vals[0]
    total = sum(f for f in faces if f is not None)
    shown = ", ".join(vals[:20]) + (", ..." if len(vals) > 20 else "")
    return f"{total} ({shown})"


def build_report(args: argparse.Namespace, paths: Sequence[Path], size: tuple[int, int] | None,
                 done: list[Detector], skipped: dict[str, str], failed: dict[str, str]) -> tuple[str, dict[str, Any]]:
    header = {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "threads": args.threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "versions": versions(),
    }
    p50 = {d.name: percentile_ms([t for ts in d.times for t in ts], 50) for d in done}
    results: list[dict[str, Any]] = []
    for d in done:
        flat = [t for ts in d.times for t in ts]
        results.append({
            "name": d.name,
            "input": d.input_kind,
            "settings": d.settings,
            "p50_ms": p50[d.name],
            "p90_ms": percentile_ms(flat, 90),
            "cpu_p50_ms": percentile_ms([t for ts in d.cpu_times for t in ts], 50),
            "per_image_p50_ms": [percentile_ms(ts, 50) for ts in d.times],
            "faces": d.faces,
            "ratio_p50_vs_featherface_onnxruntime": p50[d.name] / p50[FF_ORT] if FF_ORT in p50 else None,
            "ratio_p50_vs_featherface_torch": p50[d.name] / p50[FF_TORCH] if FF_TORCH in p50 else None,
            "times_ms": [[1000.0 * t for t in ts] for ts in d.times],
        })
    not_run = {**skipped, **failed}
    size_text = "native size" if size is None else f"resized to {size[0]}x{size[1]}"
    lines = [
        "# featherface v2_ultra vs peer face detectors (CPU, one process)",
        "",
        f"- CPU: {header['cpu']}; usable cores: {header['usable_cores']}; threads: {args.threads}"
        f" (OMP_NUM_THREADS={header['OMP_NUM_THREADS'] or 'unset'})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()),
        f"- python: {sys.executable}",
        f"- images: {len(paths)}, {size_text}: " + ", ".join(str(p) for p in paths[:5])
        + (f", ... ({len(paths) - 5} more)" if len(paths) > 5 else ""),
        f"- {args.warmup} warm-up + {args.runs} timed rounds, detectors interleaved per image, order rotated"
        " per round; time = the detect call only (input already in the detector's format)",
        "",
        "| detector | input | p50 ms | p90 ms | CPU p50 ms | faces | p50 / ff-ort p50 | p50 / ff-torch p50 |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['name']} | {r['input']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['cpu_p50_ms']:.1f} | {fmt_faces(r['faces'])} | "
                     f"{fmt_ratio(r['ratio_p50_vs_featherface_onnxruntime'])} | "
                     f"{fmt_ratio(r['ratio_p50_vs_featherface_torch'])} |")
    lines.append("")
    if len(paths) > 1:
        lines.append("faces: total over the images (per image, in order).")
    lines += ["CPU ms: process CPU time (all threads) during the call; CPU / wall shows the parallelism used."]
    lines += ["", "Settings:"] + [f"- {r['name']}: {r['settings']}" for r in results]
    if not_run:
        lines += ["", "Not run:"] + [f"- {k}: skipped: {v}" if k in skipped else f"- {k}: {v}"
                                    for k, v in not_run.items()]
    md = "\n".join(lines) + "\n"
    data = {
        "header": header,
        "config": {"images": [str(p) for p in paths], "size": None if size is None else list(size),
                   "warmup": args.warmup, "runs": args.runs, "threads": args.threads, "detectors": args.detectors},
        "results": results,
        "skipped": skipped,
        "failed": failed,
    }
    return md, data


# ------------------------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="CPU latency of featherface v2_ultra vs peer face detectors (Haar, MTCNN, MediaPipe "
                    "BlazeFace) in one process, on the same images. See the module docstring for the method "
                    "and how to build each peer's environment (benchmarks/peers/make_env.sh NAME).")
    ap.add_argument("--images", nargs="+", default=[str(DEFAULT_IMAGE)], metavar="PATH",
                    help="image files and/or folders (their image files, sorted) (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="keep only the first N images")
    ap.add_argument("--size", type=parse_size, default=parse_size("640x480"), metavar="WxH",
                    help="resize every image to WxH with cv2.resize before timing; 'native' keeps sizes "
                         "(default: 640x480)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads, cv2.setNumThreads and featherface num_threads (default: 2)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed rounds (default: 5)")
    ap.add_argument("--runs", type=int, default=30, help="timed rounds (default: 30)")
    ap.add_argument("--detectors", nargs="+", choices=ALL_DETECTORS, default=list(ALL_DETECTORS), metavar="NAME",
                    help="subset to run, from: " + ", ".join(ALL_DETECTORS) + " (default: all that load)")
    ap.add_argument("--json-out", type=Path, default=None, help="write all results as JSON here")
    ap.add_argument("--md-out", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--list", action="store_true", help="only load the detectors, print which load, and exit")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        ap.error("--threads and --runs must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if torch is not None:
        torch.set_num_threads(args.threads)
    detectors, skipped = load_detectors(args.detectors, args.threads)
    if args.list:
        for d in detectors:
            print(f"{d.name}: ok: {d.settings}")
        for name, reason in skipped.items():
            print(f"{name}: skipped: {reason}")
        return 0
    if not detectors:
        print("peers.py: no detector could be loaded:", file=sys.stderr)
        for name, reason in skipped.items():
            print(f"  {name}: skipped: {reason}", file=sys.stderr)
        return 1
    paths = expand_images(args.images, args.limit)
    inputs = load_images(paths, args.size)
    failed: dict[str, str] = {}
    done = run_benchmark(detectors, inputs, args.warmup, args.runs, failed)
    md, data = build_report(args, paths, args.size, done, skipped, failed)
    print(md, end="")
    if args.md_out is not None:
        args.md_out.parent.mkdir(parents=True, exist_ok=True)
        args.md_out.write_text(md)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
