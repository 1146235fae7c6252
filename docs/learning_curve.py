"""Learning curve of the packaged ``v2_ultra`` weights: AP on the fixed 500-image WIDER FACE val
subset per checkpoint of each training stage, evaluated from the runs' checkpoints and plotted.

    # evaluate checkpoints of a run and append them to docs/data/learning_curve.jsonl
    python docs/learning_curve.py evaluate runs/v2_ultra_s1_frozen --stage s1_frozen \
        --widerface data/widerface --every 5
    # draw docs/learning_curve.png from that file (and the runs' metrics.jsonl for images/s)
    python docs/learning_curve.py plot

The subset (``featherface evaluate --subset 500``, seed 0) is a fixed sample of val used only to
*watch* training; it is never used to train, and no checkpoint was picked by it for shipping: the
shipped weights are the last EMA weights of the last stage. The benchmark is the full val set
(docs/evaluation.md). Each record says which checkpoint, after how many training crops.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CURVE = DOCS / "data" / "learning_curve.jsonl"
PNG = DOCS / "learning_curve.png"


def _records(path: Path = CURVE) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from featherface.train.checkpoint import load_checkpoint_model
    from featherface.train.widerface_eval import evaluate_detector_on_widerface

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    config = json.loads((run / "train_config.json").read_text())
    batch = int(config["batch_size"])
    done = {(r["stage"], r["step"], r["ema"]) for r in _records()}
    ckpts = sorted(run.glob("epoch*.pt"))
    chosen = [] if args.last_only else [c for c in ckpts if int(c.stem[5:]) % args.every == 0]
    if (run / "last.pt").exists():
        chosen.append(run / "last.pt")
    for ckpt in chosen:
        step = int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"])
        if (args.stage, step, not args.no_ema) in done:
            continue
        model, mcfg, _ = load_checkpoint_model(ckpt, use_ema=not args.no_ema)
        res = evaluate_detector_on_widerface(model, mcfg, args.widerface, subset=args.subset, progress=False)
        rec = {"stage": args.stage, "checkpoint": ckpt.name, "step": step, "crops": step * batch,
               "image_size": config["image_size"], "ema": not args.no_ema, "subset": args.subset,
               **{k: round(float(res[k]), 4) for k in ("easy", "medium", "hard")}}
        print(json.dumps(rec), flush=True)
        CURVE.parent.mkdir(parents=True, exist_ok=True)
        with CURVE.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        done.add((args.stage, step, not args.no_ema))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = _records()
    if not recs:
        print(f"no records in {CURVE}", file=sys.stderr)
        return 1
    stages = list(dict.fromkeys(r["stage"] for r in recs))
    offset, x_of = 0, {}
    for st in stages:  # crops are cumulative across stages, in the order the stages ran
        rs = sorted((r for r in recs if r["stage"] == st), key=lambda r: r["step"])
        for r in rs:
            x_of[(st, r["step"])] = offset + r["crops"]
        offset += max(r["crops"] for r in rs)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, color in (("easy", "tab:green"), ("medium", "tab:orange"), ("hard", "tab:red")):
        for st in stages:
            rs = sorted((r for r in recs if r["stage"] == st and not r["ema"]), key=lambda r: r["step"])
            ax.plot([x_of[(st, r["step"])] / 1000 for r in rs], [100 * r[key] for r in rs], "o-", color=color,
                    label=f"{key} (raw weights)" if st == stages[0] else None)
            es = [r for r in recs if r["stage"] == st and r["ema"]]
            ax.plot([x_of[(st, r["step"])] / 1000 for r in es], [100 * r[key] for r in es], "*", ms=12, color=color,
                    label=f"{key} (EMA at the end of a stage; the last is shipped)" if st == stages[0] and es else None)
    for y, key in ((args.teacher_easy, "easy"), (args.teacher_medium, "medium"), (args.teacher_hard, "hard")):
        if y:
            ax.axhline(y, ls=":", color={"easy": "tab:green", "medium": "tab:orange", "hard": "tab:red"}[key], lw=1)
    ax.set_xlabel("training crops (thousands, cumulative over stages)")
    ax.set_ylabel("AP (%) on the fixed 500-image val subset")
    ax.set_title("v2_ultra learning curve (dotted: reference V1 teacher, same subset)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("run")
    e.add_argument("--stage", required=True)
    e.add_argument("--widerface", required=True)
    e.add_argument("--every", type=int, default=5, help="evaluate epochNNNN.pt checkpoints whose epoch is a multiple")
    e.add_argument("--subset", type=int, default=500)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--no-ema", action="store_true", help="the raw weights instead of the EMA")
    e.add_argument("--last-only", action="store_true", help="only last.pt (e.g. its EMA, the shipped weights)")
    e.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("plot")
    p.add_argument("--out", default=str(PNG))
    p.add_argument("--teacher-easy", type=float)
    p.add_argument("--teacher-medium", type=float)
    p.add_argument("--teacher-hard", type=float)
    p.set_defaults(func=cmd_plot)
    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
