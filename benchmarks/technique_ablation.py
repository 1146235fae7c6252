#!/usr/bin/env python
"""Ablation of the five v2_ultra techniques on the dev split, with several seeds: the same
frozen-backbone schedule with each technique flipped in turn (and all five off), each variant trained
once per seed, scored on the fixed dev split (``featherface.train.devset``: held-out WIDER FACE
*train* images with their official boxes + teacher-labelled extra photographs). WIDER FACE val is
never used here: it is the benchmark, and every technique switch is a choice.

    # train and score every (variant, seed); resumable, two processes can share one --out
    python benchmarks/technique_ablation.py run configs/cpu/v2_ultra_ablation_dev.yaml --seeds 1 2 3 \
        --dev ../dev --widerface ../data/widerface --extra ../data/extra \
        --out ../runs/technique_ablation_dev.json [--shard 0/2]
    # the table: mean and spread over seeds, and each variant's per-seed difference to the registry config;
    # --result also writes it as the result file that docs/results.py renders into docs/training.md
    python benchmarks/technique_ablation.py report ../runs/technique_ablation_dev.json \
        --config configs/cpu/v2_ultra_ablation_dev.yaml --result docs/data/technique_ablation_dev.json
    # re-time each variant's ONNX Runtime graph (e.g. on a quiet machine)
    python benchmarks/technique_ablation.py latency configs/cpu/v2_ultra_ablation_dev.yaml \
        --out ../runs/technique_ablation_dev.json --threads 1 --repeats 50

Every variant of a seed starts from the same point (teacher backbone, class prior, the seed's head
initialisation and data order) and trains for the config's ``max_steps``: a comparison of what each
variant reaches on one schedule, not of converged networks. Latency: the ``onnxruntime`` graph of
the variant (random weights: the time does not depend on them), batch 1, 640x480, ``--threads``
intra-op threads, median of ``--repeats`` calls after warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from featherface._models.config import V2UltraTechniques
from featherface.train.config import TrainConfig

TECHNIQUES = [f.name for f in dataclasses.fields(V2UltraTechniques)]
SETTINGS = ("large", "medium", "all")  # dev AP on faces >= 50 px, >= 20 px, all counted faces
REFERENCE = "registry default"


def variants(base: dict[str, bool]) -> list[tuple[str, dict[str, bool]]]:
    """The registry config, then each technique flipped in turn, then all off."""
    out = [(REFERENCE, dict(base))]
    for name in TECHNIQUES:
        flipped = dict(base, **{name: not base[name]})
        out.append((f"{name} {'on' if flipped[name] else 'off'}", flipped))
    out.append(("all five off", {n: False for n in TECHNIQUES}))
    return out


def tasks(base: dict[str, bool], seeds: list[int], shard: tuple[int, int]) -> list[tuple[str, dict[str, bool], int]]:
    """Every (variant, techniques, seed), seed-major (all variants of seed 1 first), this shard's share."""
    every = [(label, techs, seed) for seed in seeds for label, techs in variants(base)]
    index, count = shard
    return [t for i, t in enumerate(every) if i % count == index]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` so that two processes can append to one result file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def _append(path: Path, rec: dict[str, Any]) -> None:
    with _locked(path):
        results = _read(path)
        results.append(rec)
        path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def ort_latency_ms(config: Any, threads: int, repeats: int) -> float:
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


def _shard(value: str) -> tuple[int, int]:
    index, sep, count = value.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {value!r}")
    return int(index), int(count)


def cmd_run(args: argparse.Namespace) -> int:
    from featherface._api import FaceDetector
    from featherface.train.devset import load_dev_split, score_on_dev
    from featherface.train.loop import Trainer

    base_cfg = TrainConfig.from_file(args.config)
    base = base_cfg.model_config().techniques.to_dict()  # type: ignore[union-attr]
    out = Path(args.out)
    dev = load_dev_split(args.dev, args.widerface, args.extra)
    for label, techs, seed in tasks(base, args.seeds, args.shard):
        with _locked(out):
            if any(r["variant"] == label and r["seed"] == seed for r in _read(out)):
                continue
        cfg = dataclasses.replace(base_cfg, techniques=techs, seed=seed,
                                  out_dir=str(Path(base_cfg.out_dir) / f"{label.replace(' ', '_')}_seed{seed}"))
        t0 = time.perf_counter()
        tr = Trainer(cfg)
        tr.fit()
        train_s = time.perf_counter() - t0
        det = FaceDetector(tr.eval_model().eval(), tr.model_config, device="cpu")
        res = score_on_dev(det, dev)
        rec = {"variant": label, "techniques": techs, "seed": seed, "steps": tr.step,
               "crops": tr.step * cfg.batch_size, "image_size": cfg.image_size, "train_s": round(train_s, 1),
               "dev": {part: {k: round(100 * v, 2) for k, v in aps.items()} for part, aps in res.items()},
               "ort_ms_640x480": round(ort_latency_ms(tr.model_config, args.threads, args.repeats), 2),
               "threads": args.threads}
        print(json.dumps(rec), flush=True)
        _append(out, rec)
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    base_cfg = TrainConfig.from_file(args.config)
    out = Path(args.out)
    ms: dict[str, float] = {}
    with _locked(out):
        results = _read(out)
        for r in results:
            if r["variant"] not in ms:
                cfg = dataclasses.replace(base_cfg, techniques=r["techniques"])
                ms[r["variant"]] = round(ort_latency_ms(cfg.model_config(), args.threads, args.repeats), 2)
            r["ort_ms_640x480"], r["threads"] = ms[r["variant"]], args.threads
        out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


def _mean(rec: dict[str, Any]) -> float:
    return sum(rec["dev"]["dev"][k] for k in SETTINGS) / len(SETTINGS)


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant (the registry config first, all five off last, the others as first seen): mean and sample standard deviation over seeds of the dev AP
    at each setting and of their mean, and the per-seed difference of that mean to the registry config
    (seeds where both ran)."""
    by_variant: dict[str, dict[int, dict[str, Any]]] = {}
    for r in results:
        by_variant.setdefault(r["variant"], {})[r["seed"]] = r
    ref = by_variant.get(REFERENCE, {})
    order = sorted(by_variant, key=lambda v: (v != REFERENCE, v == "all five off"))  # stable: first-seen otherwise
    rows = []
    for label in order:
        per_seed = by_variant[label]
        recs = [per_seed[s] for s in sorted(per_seed)]
        row: dict[str, Any] = {"variant": label, "seeds": sorted(per_seed), "techniques": recs[0]["techniques"],
                               "ort_ms_640x480": recs[0]["ort_ms_640x480"]}
        for key, values in [*((k, [r["dev"]["dev"][k] for r in recs]) for k in SETTINGS), ("mean", [_mean(r) for r in recs])]:
            row[key] = statistics.fmean(values)
            row[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else float("nan")
        row["diff_to_reference"] = [round(_mean(per_seed[s]) - _mean(ref[s]), 2) for s in sorted(per_seed) if s in ref]
        rows.append(row)
    return rows


def write_result(path: Path, config: str, runs: list[dict[str, Any]], rows: list[dict[str, Any]], load: str) -> None:
    """``runs`` and their summary as a committed historical result of docs/results.py (its header
    fields: command, commit, date, machine, versions)."""
    import datetime

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
    from results import git_commit, machine, versions  # docs/results.py

    cfg = TrainConfig.from_file(config)
    rec = {"name": path.stem, "historical": True,
           "command": f"python benchmarks/technique_ablation.py run {config} --seeds "
                      f"{' '.join(str(s) for s in sorted({r['seed'] for r in runs}))} --dev ../dev --widerface "
                      "../data/widerface --extra ../data/extra --out RUNS.json [--shard I/2]; "
                      f"python benchmarks/technique_ablation.py report RUNS.json --config {config} --result {path}",
           "git_commit": git_commit(), "date": datetime.date.today().isoformat(),
           "machine": machine(1, load), "versions": versions(),
           "weights": "historical: each run trains from the teacher's backbone (the authors' V1) and a fresh head; "
                      "the runs are not kept",
           "weights_sha256": {},
           "data": {"schedule": {"image_size": cfg.image_size, "batch_size": cfg.batch_size, "steps": cfg.max_steps,
                                 "lr": cfg.lr, "freeze_backbone": cfg.freeze_backbone},
                    "runs": runs, "summary": rows}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    runs = _read(Path(args.out))
    rows = summarize(runs)
    if args.result:
        if not args.config:
            raise SystemExit("--result needs --config (the schedule it records)")
        write_result(Path(args.result), args.config, runs, rows, args.load)
    print("| variant | seeds | dev >= 50 px | >= 20 px | all | mean | mean - registry config, per seed | ORT ms |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        cells = " | ".join(f"{r[k]:.2f} ± {r[k + '_sd']:.2f}" for k in (*SETTINGS, "mean"))
        diffs = ", ".join(f"{d:+.2f}" for d in r["diff_to_reference"]) if r["variant"] != REFERENCE else "-"
        print(f"| {r['variant']} | {len(r['seeds'])} | {cells} | {diffs} | {r['ort_ms_640x480']:.2f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="train and score every (variant, seed) not yet in --out")
    run.add_argument("config")
    run.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    run.add_argument("--dev", required=True, help="the dev split folder (featherface.train.devset)")
    run.add_argument("--widerface", required=True)
    run.add_argument("--extra", required=True)
    run.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                     help="run every N-th task from the I-th (for N processes on one result file)")
    run.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the latency timing")
    run.add_argument("--repeats", type=int, default=30)
    run.add_argument("--out", required=True, help="JSON result file; existing (variant, seed) entries are kept")
    lat = sub.add_parser("latency", help="re-time the variants already in --out")
    lat.add_argument("config")
    lat.add_argument("--out", required=True)
    lat.add_argument("--threads", type=int, default=1)
    lat.add_argument("--repeats", type=int, default=50)
    rep = sub.add_parser("report", help="print the table of --out")
    rep.add_argument("out")
    rep.add_argument("--result", help="also write a docs/results.py result file here")
    rep.add_argument("--config", help="the run config (recorded in the result file)")
    rep.add_argument("--load", default="two runs at a time, one per core of the 2-core VM",
                     help="what else ran on the machine (recorded in the result file)")
    args = ap.parse_args(argv)
    return {"run": cmd_run, "latency": cmd_latency, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
