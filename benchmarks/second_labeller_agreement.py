#!/usr/bin/env python
"""Does YuNet see the faces the V1 teacher is unsure of? For the first ``--limit`` images of a teacher
labels file (``featherface pseudo-label --unlabelled``), YuNet (``featherface.train.second_labeller``)
runs on each image that has ignore regions (teacher score 0.2-0.6), and each ignore region gets the
best score of the YuNet detections overlapping it at IoU >= 0.3 and >= 0.5. Prints how many regions
reach each YuNet score: what ``featherface second-label --min-score S --match-iou I`` would promote.

    python benchmarks/second_labeller_agreement.py --yunet ../shared/data/peers/face_detection_yunet_2026may.onnx \\
        --labels ../data/extra_labels_s8/MonsterVivy+shanghaitech.jsonl \\
        --images ../data/extra/MonsterVivy+shanghaitech --limit 150 --json
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np
import torch

from featherface._ops.boxes import box_iou
from featherface.train.data import load_image_bgr
from featherface.train.second_labeller import SecondLabelPolicy, create_yunet, yunet_faces

IOUS = (0.3, 0.5)
SCORES = (0.8, 0.6, 0.4, 0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--yunet", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=150, help="the first N records of the labels file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    detector = create_yunet(args.yunet)
    max_side = SecondLabelPolicy().max_side
    with open(args.labels, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()][: args.limit]
    best: dict[float, list[float]] = {t: [] for t in IOUS}
    faces = regions = 0
    for rec in records:
        ignore = np.array(rec.get("ignore", []), np.float32).reshape(-1, 4)
        faces, regions = faces + len(rec["faces"]), regions + len(ignore)
        if not len(ignore):
            continue
        boxes, _, scores = yunet_faces(detector, load_image_bgr(f"{args.images}/{rec['image']}"), max_side)
        if not len(boxes):
            for t in IOUS:
                best[t] += [0.0] * len(ignore)
            continue
        iou = box_iou(torch.from_numpy(ignore), torch.from_numpy(boxes)).numpy()
        for t in IOUS:
            best[t] += np.where(iou >= t, scores[None, :], 0.0).max(axis=1).tolist()
    result = {"images": len(records), "teacher_faces": faces, "ignore_regions": regions,
              "yunet_at_least": {f"iou>={t}": {f"{s}": int((np.array(best[t]) >= s).sum()) for s in SCORES}
                                 for t in IOUS}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(records)} images, {faces} teacher faces, {regions} ignore regions")
        for key, counts in result["yunet_at_least"].items():
            print(f"  YuNet {key}: " + ", ".join(f"score >= {s}: {n}" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
