#!/usr/bin/env python
"""Cost of one CPU training step, split into data, backbone, teacher, student forward, loss, backward
and optimizer, for a training config (a benchmark, not a test).

Runs the config's own :class:`featherface.train.loop.Trainer` (same model, teacher, loss and
data loader) and times each part of ``train_step`` with ``time.perf_counter`` over ``--steps`` steps
after ``--warmup`` steps, printing a Markdown table of median milliseconds per step and the
resulting images/s. ``--set key=value`` overrides config fields (YAML syntax), e.g.
``--set freeze_backbone=false`` to compare with the unfrozen run. The forward pass and loss run under
the trainer's autocast (``cpu_bf16``) and memory layout (``cpu_channels_last``), as in ``train_step``.

    python benchmarks/train_step_cost.py configs/cpu/v2_ultra_s1_frozen.yaml --steps 20

``--compile`` runs the student through ``torch.compile`` (default inductor backend; on the CPU it
needs a C++ compiler); the compilation happens in the first warm-up step and the first step's time is
reported separately (``compile_s``), not in the step medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from featherface.train.config import TrainConfig
from featherface.train.distill import combined_loss
from featherface.train.loop import Trainer


def _parse_overrides(items: list[str]) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def _loss_check(tr: Trainer) -> dict[str, float | str]:
    """Task loss of the first batch in float32 and under the trainer's autocast, same weights (eval-mode
    BatchNorm so that nothing changes between the two passes)."""
    images, targets = next(iter(tr.data_loader(0)))
    matched = tr.criterion.match(targets, tr.priors)
    tr.model.eval()
    out = {}
    with torch.no_grad():
        for name, enabled in (("float32", False), ("autocast", True)):
            x = images.contiguous(memory_format=torch.channels_last) if tr.channels_last else images
            with torch.autocast(tr.device.type, dtype=tr.amp_dtype or torch.float32, enabled=enabled):
                feats, _ = tr.teacher_pass(x)
                res = tr.model.forward_head(feats) if feats is not None else tr.model(x)
                out[name] = float(tr.criterion(res, None, tr.priors, matched=matched)["loss"])
    return {**out, "amp": str(tr.amp_dtype).replace("torch.", ""),
            "relative_difference": abs(out["autocast"] - out["float32"]) / abs(out["float32"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compile", action="store_true", help="run the student through torch.compile")
    args = ap.parse_args(argv)

    cfg = TrainConfig.from_file(args.config)
    over = _parse_overrides(args.set)
    over.setdefault("out_dir", str(Path("/tmp") / "featherface_step_cost"))
    cfg = TrainConfig.from_dict({**cfg.to_dict(), **over})  # nested overrides (distill: {...}) are parsed too
    tr = Trainer(cfg)
    loss_check = _loss_check(tr) if tr.amp_dtype is not None else None
    parts: dict[str, list[float]] = {k: [] for k in ("data", "match", "backbone+teacher", "student_forward", "loss",
                                                      "backward", "optimizer", "total")}
    student = torch.compile(tr.net) if args.compile else tr.net
    compile_s = None
    loader = iter(tr.data_loader(0))
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        images, targets = next(loader)
        t1 = time.perf_counter()
        tr.net.train()
        if cfg.freeze_backbone:
            tr.model.backbone.eval()
        if tr.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        matched = tr.criterion.match(targets, tr.priors)
        amp = torch.autocast(tr.device.type, dtype=tr.amp_dtype or torch.float32, enabled=tr.amp_dtype is not None)
        amp.__enter__()
        t2 = time.perf_counter()  # backbone and teacher: one ONNX Runtime call with teacher_runtime onnxruntime
        feats, t_out = tr.teacher_pass(images)
        t3 = time.perf_counter()
        out = student(feats) if feats is not None else student(images)
        t4 = time.perf_counter()
        task = tr.criterion(out, None, tr.priors, matched=matched)
        total = task["loss"]
        if t_out is not None and tr.distill is not None:
            total = combined_loss(task, tr.distill(out, t_out, matched[1]), cfg.distill)["total"]
        amp.__exit__(None, None, None)
        t5 = time.perf_counter()
        tr.optimizer.zero_grad(set_to_none=True)
        total.backward()
        t6 = time.perf_counter()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in tr.model.parameters() if p.requires_grad], cfg.grad_clip)
        tr.optimizer.step()
        tr.scheduler.step()
        if tr.ema is not None:
            tr.ema.update_parameters(tr.model)
        t7 = time.perf_counter()
        if i == 0 and args.compile:
            compile_s = t7 - t0  # the first step: compilation of the forward and backward graphs
        if i >= args.warmup:
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t7 - t0)):
                parts[k].append(v * 1000.0)
    med = {k: statistics.median(v) for k, v in parts.items()}
    ips = cfg.batch_size / (med["total"] / 1000.0)
    info = {"config": args.config, "overrides": over, "batch_size": cfg.batch_size, "image_size": cfg.image_size,
            "threads": torch.get_num_threads(), "workers": cfg.workers, "shared_backbone": tr.shared_backbone,
            "median_ms": med, "images_per_s": ips, "loss_check": loss_check,
            "compile": args.compile, "compile_s": compile_s}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"config {args.config} {over}; batch {cfg.batch_size} at {cfg.image_size}px; "
              f"{torch.get_num_threads()} threads, {cfg.workers} loader workers; shared backbone {tr.shared_backbone}")
        print("| part | median ms / step |\n|---|---:|")
        for k, v in med.items():
            print(f"| {k} | {v:.1f} |")
        print(f"images/s: {ips:.2f}")
        if compile_s is not None:
            print(f"torch.compile: {compile_s:.1f} s in the first warm-up step")
        if loss_check:
            print(f"loss on one fixed batch: float32 {loss_check['float32']:.5f}, {loss_check['amp']} autocast "
                  f"{loss_check['autocast']:.5f} (relative difference {loss_check['relative_difference']:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
