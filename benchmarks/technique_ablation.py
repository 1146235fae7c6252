#!/usr/bin/env python
"""Ablation of the five v2_ultra techniques (issue 11, item 4): the same short frozen-backbone
schedule with each technique switched off (or on) in turn, AP on the fixed WIDER FACE val subset
and the network's ONNX Runtime latency at 640x480.

    python benchmarks/technique_ablation.py configs/cpu/v2_ultra_ablation.yaml \
        --widerface data/widerface --subset 500 --out docs/data/technique_ablation.json

Each variant trains from the same start (teacher backbone, class prior, same seed and data order)
for the config's ``max_steps``; the result is a *short-schedule* comparison, not the converged
accuracy of each variant. Latency: ``onnxruntime`` raw graph of the variant (random weights: the
time does not depend on them), batch 1, 640x480, ``--threads`` intra-op threads, median of
``--repeats`` calls after warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from featherface._models.config import V2UltraTechniques
from featherface.train.config import TrainConfig
from featherface.train.loop import Trainer
from featherface.train.widerface_eval import evaluate_detector_on_widerface

TECHNIQUES = [f.name for f in dataclasses.fields(V2UltraTechniques)]


def variants(base: dict[str, bool]) -> list[tuple[str, dict[str, bool]]]:
    """The registry config, then each technique flipped in turn, then all off."""
    out = [("registry default", dict(base))]
    for name in TECHNIQUES:
        flipped = dict(base, **{name: not base[name]})
        out.append((f"{name} {'on' if flipped[name] else 'off'}", flipped))
    out.append(("all five off", {n: False for n in TECHNIQUES}))
    return out


def ort_latency_ms(config, threads: int, repeats: int) -> float:
    from featherface._engines.onnx_export import export_network_onnx
    from featherface._engines.onnxruntime import backend_opset, make_session
    from featherface._models import create_network

    net = create_network(config).eval()
    sess = make_session(export_network_onnx(net, None, opset=backend_opset()), num_threads=threads)
    x = np.random.default_rng(0).standard_normal((1, 3, 480, 640)).astype(np.float32)
    for _ in range(5):
        sess.run(None, {"input": x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, {"input": x})
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--widerface", required=True)
    ap.add_argument("--subset", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--only", nargs="*", help="run only the variants whose label starts with one of these")
    ap.add_argument("--out", required=True, help="JSON file; existing entries are kept (resumable)")
    ap.add_argument("--latency-only", action="store_true",
                    help="only re-time the variants already in --out (e.g. on a quiet machine)")
    args = ap.parse_args(argv)
    base_cfg = TrainConfig.from_file(args.config)
    base = base_cfg.model_config().techniques.to_dict()  # type: ignore[union-attr]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else []
    done = {r["variant"] for r in results}
    if args.latency_only:
        for r in results:
            cfg = dataclasses.replace(base_cfg, techniques=r["techniques"])
            r["ort_ms_640x480"] = round(ort_latency_ms(cfg.model_config(), args.threads, args.repeats), 2)
            r["threads"] = args.threads
        out.write_text(json.dumps(results, indent=1) + "\n")
    for label, techs in variants(base):
        if args.latency_only or label in done or (args.only and not any(label.startswith(o) for o in args.only)):
            continue
        cfg = dataclasses.replace(base_cfg, techniques=techs,
                                  out_dir=str(Path(base_cfg.out_dir) / label.replace(" ", "_")))
        t0 = time.perf_counter()
        tr = Trainer(cfg)
        tr.fit()
        train_s = time.perf_counter() - t0
        model = tr.eval_model()
        res = evaluate_detector_on_widerface(model, tr.model_config, args.widerface, subset=args.subset, progress=False)
        rec = {"variant": label, "techniques": techs, "steps": tr.step, "crops": tr.step * cfg.batch_size,
               "image_size": cfg.image_size, "train_s": round(train_s, 1), "subset": args.subset,
               **{k: round(float(res[k]), 4) for k in ("easy", "medium", "hard")},
               "ort_ms_640x480": round(ort_latency_ms(tr.model_config, args.threads, args.repeats), 2),
               "threads": args.threads}
        print(json.dumps(rec), flush=True)
        results.append(rec)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    print("| variant | easy | medium | hard | ORT ms (640x480) |\n|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['variant']} | {100 * r['easy']:.2f} | {100 * r['medium']:.2f} | {100 * r['hard']:.2f} | {r['ort_ms_640x480']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
