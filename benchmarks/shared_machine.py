#!/usr/bin/env python
"""Latency of ``detect`` when the machine is shared (a measurement, not a test): the data behind the
default thread policy (:data:`featherface._engines.torch_runner.SINGLE_THREAD_MAX_PIXELS`).

For each detector setting (``--settings``: ``default`` = the library's defaults; ``threads=N`` =
``load_model(num_threads=N)``, where N = the number of cores is torch's own default), it measures the
median latency of ``detect`` on a ``--size`` image in three situations, each for ``--seconds``:

* ``alone``: one process;
* ``two processes``: two processes side by side, each calling ``detect`` in a loop (a web server
  with two workers);
* ``busy core``: one process next to a process that spins in plain Python (a video decoder, say).

and prints the ratio side-by-side / alone (the goal: within 1.5x).

    python benchmarks/shared_machine.py --json docs/data/shared_machine.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from typing import Any


def _worker(setting: str, size: tuple[int, int], seconds: float, start: Any, out: Any) -> None:
    import numpy as np

    import featherface

    kwargs: dict[str, Any] = {}
    if setting.startswith("threads="):
        kwargs["num_threads"] = int(setting.split("=")[1])
    det = featherface.load_model("v2_ultra", device="cpu", **kwargs)
    img = np.random.default_rng(0).integers(0, 255, size=(*size, 3), dtype=np.uint8)
    for _ in range(3):
        det.detect(img)
    start.wait()
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        det.detect(img)
        times.append(time.perf_counter() - t0)
    out.put(times)


def _spinner(seconds: float, start: Any) -> None:
    start.wait()
    t_end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < t_end:
        x += 1


def _run(setting: str, size: tuple[int, int], seconds: float, workers: int, spin: bool) -> list[float]:
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(workers + int(spin))
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(setting, size, seconds, start, out)) for _ in range(workers)]
    if spin:
        procs.append(ctx.Process(target=_spinner, args=(seconds, start)))
    for p in procs:
        p.start()
    times = [t for _ in range(workers) for t in out.get()]
    for p in procs:
        p.join()
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = os.cpu_count() or 1
    ap.add_argument("--settings", default=f"default,threads={cores},threads=1")
    ap.add_argument("--size", default="480x640", help="HxW of the image")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", help="write the result file here")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    rows: dict[str, dict[str, float]] = {}
    for setting in args.settings.split(","):
        alone = _run(setting, (h, w), args.seconds, 1, False)
        two = _run(setting, (h, w), args.seconds, 2, False)
        busy = _run(setting, (h, w), args.seconds, 1, True)
        med = {k: 1000 * statistics.median(v) for k, v in (("alone", alone), ("two", two), ("busy", busy))}
        rows[setting] = {"alone_ms": round(med["alone"], 2), "two_processes_ms": round(med["two"], 2),
                         "busy_core_ms": round(med["busy"], 2), "two_over_alone": round(med["two"] / med["alone"], 2),
                         "busy_over_alone": round(med["busy"] / med["alone"], 2), "calls_alone": len(alone),
                         "calls_two": len(two)}
        print(setting, rows[setting], flush=True)
    import torch

    import featherface

    result = {"command": "python benchmarks/shared_machine.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "image": f"{w}x{h}", "seconds": args.seconds, "cores": cores,
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "featherface": featherface.__version__, "rows": rows}
    print("| setting | alone ms | two processes ms (ratio) | next to a busy core ms (ratio) |\n|---|---:|---:|---:|")
    for s, r in rows.items():
        print(f"| {s} | {r['alone_ms']:.1f} | {r['two_processes_ms']:.1f} ({r['two_over_alone']:.2f}x) | "
              f"{r['busy_core_ms']:.1f} ({r['busy_over_alone']:.2f}x) |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
