"""The training-run log of the shipped ``v2_ultra`` weights: dev-split AP per checkpoint of every stage,
against the training crops seen since the first stage, with the wall-clock time it took.

Every choice between stages and checkpoints is made on these dev numbers (the dev split of
``featherface.train.devset``: WIDER FACE *train* hold-out with official boxes + teacher-labelled
extra photographs); WIDER FACE val is measured once, for the weights that ship (docs/evaluation.md).
The log is ``docs/data/training_log.jsonl``; the next session appends to it.

    # score a weights folder (e.g. the weights a stage starts from) and log it
    python docs/training_log.py weights src/featherface/weights/v2_ultra --stage s2_unfrozen \
        --crops-total 55520 --wall-hours 2.02 --dev ../dev --widerface ../data/widerface --extra ../data/extra
    # score the EMA weights of a run's step checkpoints (every N steps and last.pt) and log them
    python docs/training_log.py run ../runs/v2_ultra_s4 --stage s4_extra --crops-before 55520 \
        --every 500 --dev ../dev --widerface ../data/widerface --extra ../data/extra
    # the same for a dev-only ablation run (its own table, docs/data/dev_ablation.json, and plot panel)
    python docs/training_log.py run ../runs/v2_ultra_abl_a --stage abl_a_wider_only --crops-before 55520 \
        --every 100 --ablation --dev ../dev --widerface ../data/widerface --extra ../data/extra
    # a stage that starts from a logged checkpoint of another run (its curve is drawn from that point)
    python docs/training_log.py run ../runs/v2_ultra_s7 --stage s7_background --crops-before 65120 \
        --starts-from abl_h_no_mask_sets_600:600 --every 100 --dev ../dev --widerface ../data/widerface \
        --extra ../data/extra
    # the dev rows of a model card: best (by the mean of the three settings) and last checkpoint of
    # every run logged before the choice, the weights folders, and which one ships
    python docs/training_log.py candidates --ship s8_more_photos:600 --skip s9_continue s8r_all_people s10_unfrozen s11_mask_sets
    # draw docs/training_log.png from the log
    python docs/training_log.py plot
    # write docs/data/training_log.json (the table docs/training.md shows; python docs/results.py renders it)
    python docs/training_log.py table
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
LOG = DOCS / "data" / "training_log.jsonl"
PNG = DOCS / "training_log.png"


def records(path: Path = LOG) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _append(rec: dict[str, Any]) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)


def _dev(detector: Any, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from featherface.train.devset import load_dev_split, score_on_dev

    res = score_on_dev(detector, load_dev_split(args.dev, args.widerface, args.extra))
    return {part: {k: round(100 * v, 2) for k, v in aps.items()} for part, aps in res.items()}


def _wall_hours(run: Path, upto_step: int) -> float:
    """Hours of training up to ``upto_step`` from the run's ``metrics.jsonl`` (images/s per logged window)."""
    cfg = json.loads((run / "train_config.json").read_text(encoding="utf-8"))
    batch, seconds, last = int(cfg["batch_size"]), 0.0, 0
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "images_per_s" not in rec or rec["step"] > upto_step:
            continue
        seconds += (rec["step"] - last) * batch / max(rec["images_per_s"], 1e-9)
        last = rec["step"]
    return round(seconds / 3600, 3)


def cmd_weights(args: argparse.Namespace) -> int:
    import featherface
    from featherface._weights.files import sha256_file

    det = featherface.load_model(weights=args.weights, device="cpu", num_threads=args.threads)
    sha = sha256_file(Path(args.weights) / "model.safetensors")
    _append({"stage": args.stage, "checkpoint": str(args.weights), "weights_sha256": sha, "step": None,
             "crops_total": args.crops_total, "wall_hours_total": args.wall_hours, "note": args.note,
             "dev": _dev(det, args)})
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from featherface._api import FaceDetector
    from featherface.train.checkpoint import load_checkpoint_model

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    cfg = json.loads((run / "train_config.json").read_text(encoding="utf-8"))
    batch = int(cfg["batch_size"])
    done = {(r["stage"], r["step"]) for r in records()}
    steps = sorted(run.glob("step*.pt"))
    chosen = [c for c in steps if int(c.stem[4:]) % args.every == 0]
    if (run / "last.pt").exists():
        chosen.append(run / "last.pt")
    for ckpt in chosen:
        step = int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"])
        if (args.stage, step) in done:
            continue
        done.add((args.stage, step))
        model, mcfg, _ = load_checkpoint_model(ckpt, use_ema=True)
        det = FaceDetector(model, mcfg, device="cpu")
        _append({"stage": args.stage, "checkpoint": f"{run.name}/{ckpt.name}", "ema": True, "step": step,
                 "crops_total": args.crops_before + step * batch,
                 "wall_hours_total": round(args.hours_before + _wall_hours(run, step), 3),
                 "note": args.note, **({"ablation": True} if args.ablation else {}),
                 **({"starts_from": args.starts_from} if args.starts_from else {}), "dev": _dev(det, args)})
    return 0


def _starts_from(value: str) -> dict[str, Any]:
    """``STAGE:STEP`` -> ``{"stage", "step"}``: the logged checkpoint a stage started from."""
    stage, sep, step = value.rpartition(":")
    if not sep or not stage or not step.isdigit():
        raise argparse.ArgumentTypeError(f"expected STAGE:STEP, got {value!r}")
    return {"stage": stage, "step": int(step)}


def _head(stage_recs: list[dict[str, Any]], every: list[dict[str, Any]],
          starts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where a stage's curve begins: the logged checkpoint named by its ``starts_from``, else the last
    weights folder logged (the weights packaged before this release)."""
    origin = stage_recs[0].get("starts_from")
    if origin:
        found = [r for r in every if r["stage"] == origin["stage"] and r.get("step") == origin["step"]]
        if not found:
            raise SystemExit(f"{stage_recs[0]['stage']} starts from {origin}, which the log does not hold")
        return found[:1]
    return starts[-1:]


def cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = [r for r in records() if "dev" in r and "dev" in r["dev"]]
    recs = [r for r in every if not r.get("ablation")]
    ablations = [r for r in every if r.get("ablation")]
    fig, axes = plt.subplots(1, 2 if ablations else 1, figsize=(14 if ablations else 8, 7), squeeze=False)
    ax = axes[0][0]
    starts = [r for r in recs if r.get("step") is None]  # weights folders: where later stages started
    stages = list(dict.fromkeys(r["stage"] for r in recs if r.get("step") is not None))
    styles = ["-", "--", ":", "-."]
    colours = {"large": "tab:green", "medium": "tab:orange", "all": "tab:red"}
    labels = {"large": "faces >= 50 px", "medium": "faces >= 20 px", "all": "all faces"}
    for setting, colour in colours.items():
        for r in starts:
            ax.plot([r["crops_total"] / 1000], [r["dev"]["dev"][setting]], "s", color=colour, markersize=7)
        for k, stage in enumerate(stages):
            pts = sorted((r for r in recs if r["stage"] == stage), key=lambda r: r["crops_total"])
            pts = _head(pts, every, starts) + pts
            ax.plot([r["crops_total"] / 1000 for r in pts], [r["dev"]["dev"][setting] for r in pts],
                    styles[k % len(styles)] + "o", color=colour, markersize=3,
                    label=f"{labels[setting]}, {stage}")
    for r in starts:
        ax.annotate(f"{r['stage']} (packaged before)", (r["crops_total"] / 1000, r["dev"]["dev"]["large"]), fontsize=7,
                    textcoords="offset points", xytext=(0, 8), ha="center")
    ax.set_xlabel("training crops seen since the first stage (thousands)")
    ax.set_ylabel("dev AP (%)")
    ax.set_title("v2_ultra on the dev split (never WIDER FACE val)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    if ablations:
        reference = [r for r in recs if r["stage"] == args.reference_stage]
        _plot_ablations(axes[0][1], ablations, starts[-1] if starts else None, reference)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


def _mean_dev(r: dict[str, Any]) -> float:
    """Mean of the three dev settings (faces >= 50 px, >= 20 px, all) of a log record."""
    return sum(r["dev"]["dev"][k] for k in ("large", "medium", "all")) / 3


def _plot_ablations(ax: Any, ablations: list[dict[str, Any]], start: dict[str, Any] | None,
                    reference: list[dict[str, Any]]) -> None:
    """Ablations: mean dev AP against the steps of each run, all from the weights packaged before this
    release (step 0), with the stage they are compared against (``reference``, black dashes)."""

    def curve(recs: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
        pts = sorted(recs, key=lambda r: r["step"])
        head = [] if start is None else [(0, _mean_dev(start))]
        xy = head + [(r["step"], _mean_dev(r)) for r in pts]
        return [x for x, _ in xy], [y for _, y in xy]

    if reference:
        ax.plot(*curve(reference), "k--o", markersize=3, label=f"{reference[0]['stage']} (reference)")
    for stage in dict.fromkeys(r["stage"] for r in ablations):
        ax.plot(*curve([r for r in ablations if r["stage"] == stage]), "-o", markersize=3, label=stage)
    if start is not None:
        ax.axhline(_mean_dev(start), color="grey", lw=0.8, ls=":")
    ax.set_xlabel("steps from the weights packaged before (batch 16)")
    ax.set_ylabel("dev AP, mean of the three settings (%)")
    ax.set_title("ablations on the dev split (each from the weights packaged before)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")


def candidates(recs: list[dict[str, Any]], ship: dict[str, Any], skip: set[str]) -> list[dict[str, Any]]:
    """The ``dev_results`` rows of a model card from log records: every logged weights folder (``step``
    None), then per run (in log order, runs in ``skip`` left out) its best checkpoint by the mean of
    the three dev settings and its last, by step; ``shipped`` marks the ``ship`` checkpoint."""
    folders = [r for r in recs if r.get("step") is None]
    picked: list[dict[str, Any]] = list(folders)
    stages = [st for st in dict.fromkeys(r["stage"] for r in recs if r.get("step") is not None) if st not in skip]
    for st in stages:
        run = sorted((r for r in recs if r["stage"] == st and r.get("step") is not None), key=lambda r: r["step"])
        best, last = max(run, key=_mean_dev), run[-1]
        picked += [best] if best is last else sorted([best, last], key=lambda r: r["step"])

    def name(r: dict[str, Any]) -> str:
        if r.get("step") is None:
            return f"{r['stage']} (the weights packaged before, sha256 {r['weights_sha256'][:8]}…)"
        return f"{r['stage']}{' (ablation)' if r.get('ablation') else ''} step {r['step']}"

    return [{"candidate": name(r), "crops": r["crops_total"], **{k: r["dev"]["dev"][k] for k in ("large", "medium", "all")},
             "shipped": (r["stage"], r.get("step")) == (ship["stage"], ship["step"])} for r in picked]


def cmd_candidates(args: argparse.Namespace) -> int:
    rows = candidates(records(), args.ship, set(args.skip))
    if not any(r["shipped"] for r in rows):
        raise SystemExit(f"the shipped checkpoint {args.ship} is not among the candidates")
    print(json.dumps(rows, indent=1, ensure_ascii=False))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """The log as a result file of ``docs/results.py`` (rows: stage, checkpoint, crops, hours, dev AP)."""
    import datetime

    from results import git_commit, machine, versions  # docs/results.py, beside this script

    rows, ablation_rows = [], []
    for r in records():
        d = r["dev"]
        (ablation_rows if r.get("ablation") else rows).append(
            {"stage": r["stage"], "checkpoint": r["checkpoint"], "step": r["step"],
             "crops_total": r["crops_total"], "wall_hours_total": r["wall_hours_total"],
             "dev": d["dev"], "wider": d["wider"], "extra": d["extra"], "note": r.get("note", "")})
    rec = {"name": "training_log", "historical": True,
           "command": "python docs/training_log.py weights|run ... (per stage, see docs/training.md); "
                      "python docs/training_log.py table",
           "git_commit": git_commit(), "date": datetime.date.today().isoformat(),
           "machine": machine(1, "scored on one core while training runs used the other"),
           "weights": "historical: the candidates of each stage (checkpoints listed per row; the weights packaged "
                      "before this release are the s2_unfrozen row, the packaged ones s8_more_photos step 600)",
           "versions": versions(), "weights_sha256": {}, "data": {"records": rows}}
    (DOCS / "data" / "training_log.json").write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")
    print(f"wrote docs/data/training_log.json ({len(rows)} records)")
    if ablation_rows:
        abl = {**rec, "name": "dev_ablation",
               "weights": "historical: the checkpoints of each ablation run (listed per row), all started from "
                          "the weights packaged before this release (the s2_unfrozen row of training_log)",
               "data": {"start": rows[0] if rows else None, "records": ablation_rows}}
        (DOCS / "data" / "dev_ablation.json").write_text(json.dumps(abl, indent=1) + "\n", encoding="utf-8")
        print(f"wrote docs/data/dev_ablation.json ({len(ablation_rows)} records)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("weights", "run"):
        p = sub.add_parser(name)
        p.add_argument("path")
        p.add_argument("--stage", required=True)
        p.add_argument("--dev", required=True)
        p.add_argument("--widerface", required=True)
        p.add_argument("--extra", required=True)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--note", default="")
        if name == "weights":
            p.add_argument("--crops-total", type=int, required=True)
            p.add_argument("--wall-hours", type=float, required=True)
        else:
            p.add_argument("--crops-before", type=int, required=True)
            p.add_argument("--hours-before", type=float, default=0.0)
            p.add_argument("--every", type=int, default=500)
            p.add_argument("--starts-from", type=_starts_from, default=None, metavar="STAGE:STEP",
                           help="the logged checkpoint this run started from (its curve is drawn from there)")
            p.add_argument("--ablation", action="store_true",
                           help="a dev-only experiment (not a candidate to ship): its own table and plot panel")
    p = sub.add_parser("plot")
    p.add_argument("--out", default=str(PNG))
    p.add_argument("--reference-stage", default="s6_frozen",
                   help="the stage the ablations change one thing of (drawn in their panel)")
    sub.add_parser("table")
    p = sub.add_parser("candidates", help="print a model card's dev_results rows (JSON)")
    p.add_argument("--ship", type=_starts_from, required=True, metavar="STAGE:STEP", help="the checkpoint that ships")
    p.add_argument("--skip", nargs="*", default=[], metavar="STAGE", help="runs logged after the choice")
    args = ap.parse_args(argv)
    if args.cmd == "table":
        return cmd_table(args)
    if args.cmd == "candidates":
        return cmd_candidates(args)
    if args.cmd == "weights":
        args.weights = args.path
        return cmd_weights(args)
    if args.cmd == "run":
        args.run = args.path
        return cmd_run(args)
    return cmd_plot(args)


if __name__ == "__main__":
    sys.exit(main())
