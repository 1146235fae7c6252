#!/usr/bin/env python
"""Faces found and false boxes at default options against the cap on the network input's long side
(a measurement, not a test): the data behind ``DetectorOptions.max_size``'s default.

Photographs of people that are not WIDER FACE val (the teacher-labelled extra photos of the dev
split, ``featherface.train.devset``) are upscaled to phone size (longer side ``--photo-side``, 4000 px
by default: a 12 MP phone photo) and detected at the default score threshold with the longer side of
the network input capped at each ``--caps`` value (``none``: the original size). A detection is
*found* when it overlaps a teacher face (IoU >= 0.5, faces at least ``--min-face`` px high in the
photo) and *false* when it overlaps no teacher face and no ignore region (IoU < 0.3 with all).

    python benchmarks/size_policy.py --dev ../dev --extra ../data/extra --json docs/data/size_policy.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import featherface
from featherface._bench import cpu_model
from featherface._ops.boxes import box_iou
from featherface.train.data import load_image_bgr, read_jsonl


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return box_iou(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", required=True, help="dev split folder (extra_dev.jsonl)")
    ap.add_argument("--extra", required=True, help="root of the extra photographs")
    ap.add_argument("--weights", help="weights folder (default: the packaged v2_ultra)")
    ap.add_argument("--photo-side", type=int, default=4000)
    ap.add_argument("--min-face", type=float, default=40.0, help="teacher faces counted (px high in the photo)")
    ap.add_argument("--caps", default="none,2048,1600,1280,1024,800,640")
    ap.add_argument("--images", type=int, default=60, help="photos used (those with a face, largest first)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the result file here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    det = featherface.load_model(None if args.weights else "v2_ultra", weights=args.weights, device="cpu",
                                 num_threads=args.threads)
    samples = [s for s in read_jsonl(Path(args.dev) / "extra_dev.jsonl", args.extra) if s.num_faces]
    samples = samples[: args.images]
    caps = [None if c == "none" else int(c) for c in args.caps.split(",")]
    rows = {str(c): {"faces": 0, "found": 0, "false": 0, "seconds": 0.0} for c in caps}
    for s in samples:
        img = load_image_bgr(s.image_path)
        h, w = img.shape[:2]
        f = args.photo_side / max(h, w)
        big = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC)
        faces = s.boxes * f
        keep = (faces[:, 3] - faces[:, 1]) >= args.min_face
        counted, others = faces[keep], np.concatenate([faces[~keep], s.ignore * f])
        for c in caps:
            t0 = time.perf_counter()
            out = det.detect(big, color="bgr", max_size=c)
            rows[str(c)]["seconds"] += time.perf_counter() - t0
            boxes = np.array([d.box for d in out], np.float32).reshape(-1, 4)
            hit = _iou(boxes, counted)
            rows[str(c)]["faces"] += len(counted)
            rows[str(c)]["found"] += int((hit >= 0.5).any(axis=0).sum()) if len(boxes) else 0
            near_any = np.concatenate([hit, _iou(boxes, others)], axis=1) if len(boxes) else np.zeros((0, 1))
            rows[str(c)]["false"] += int((near_any.max(axis=1, initial=0.0) < 0.3).sum()) if len(boxes) else 0
    for r in rows.values():
        r["seconds_per_photo"] = r.pop("seconds") / max(1, len(samples))
    result = {
        "command": "python benchmarks/size_policy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "weights": det.weights_source, "photos": len(samples), "photo_side": args.photo_side,
        "min_face": args.min_face, "threads": args.threads, "cpu": cpu_model(),
        "torch": torch.__version__, "featherface": featherface.__version__, "caps": rows,
    }
    print(f"{len(samples)} photos at {args.photo_side} px, teacher faces >= {args.min_face} px, default threshold")
    print("| cap (long side) | faces found | false boxes | s / photo |\n|---|---:|---:|---:|")
    for c, r in rows.items():
        print(f"| {c} | {r['found']} / {r['faces']} | {r['false']} | {r['seconds_per_photo']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
