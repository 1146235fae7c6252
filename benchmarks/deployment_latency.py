"""Single-image CPU latency of the inference paths: torch unfused, fused, fused + channels-last, ONNX Runtime.

    OMP_NUM_THREADS=1 python benchmarks/deployment_latency.py [--threads 1] [--runs 20] [--size 480x640]

Weights are random (latency does not depend on their values). Configurations are interleaved
(one call of each per round) so that background load affects them alike; the median of ``--runs``
rounds after warm-up is printed, for the network call alone (``detector.runner``) and for ``detect`` on
a uint8 BGR image (preprocessing + network + decoding + NMS). A freshly initialised network scores
every prior at about 0.5000, so ``detect`` runs with score threshold 0.6 (no candidates): it measures
the fixed overhead, not the NMS cost of a crowd.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import torch

import featherface
from featherface.pipeline import make_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["v2_ultra", "v1"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--size", default="480x640", help="HxW")
    ap.add_argument("--json-out", default=None, help="also write the medians as JSON")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    os.environ.setdefault("FEATHERFACE_CACHE", tempfile.mkdtemp(prefix="featherface-bench-"))
    print(f"torch {torch.__version__}, {args.threads} thread(s), input {h}x{w}, median of {args.runs}")
    rows: list[dict[str, object]] = []
    for name in args.models:
        torch.manual_seed(0)
        base = featherface.load_model(name, pretrained=False, device="cpu", fuse=False, channels_last=False)
        net = base.network
        dets = {
            "torch unfused": base,
            "torch fused": featherface.FaceDetector(net, base.config, device="cpu", channels_last=False),
            "torch fused+CL": featherface.FaceDetector(net, base.config, device="cpu"),
            "onnxruntime": featherface.FaceDetector(net, base.config, backend="onnxruntime",
                                                    num_threads=args.threads, weights_source="bench"),
        }
        x = make_batch([img], base.config.mean_bgr, base.runner.batch_spec)
        times: dict[str, dict[str, list[float]]] = {k: {"net": [], "detect": []} for k in dets}
        for i in range(args.warmup + args.runs):
            for key, det in dets.items():
                t0 = time.perf_counter()
                det.runner(x)
                t1 = time.perf_counter()
                det.detect(img, color="bgr", score_threshold=0.6)
                t2 = time.perf_counter()
                if i >= args.warmup:
                    times[key]["net"].append(t1 - t0)
                    times[key]["detect"].append(t2 - t1)
        for key, t in times.items():
            net_ms, det_ms = 1000 * statistics.median(t["net"]), 1000 * statistics.median(t["detect"])
            rows.append({"model": name, "path": key, "network_ms": round(net_ms, 2), "detect_ms": round(det_ms, 2)})
            print(f"{name:9s} {key:15s} network {net_ms:7.1f} ms   detect {det_ms:7.1f} ms")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"threads": args.threads, "runs": args.runs, "warmup": args.warmup, "size_hxw": [h, w],
                       "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
