"""How two label sets of the same photos agree: annotated boxes (Pascal VOC) against teacher labels (JSON lines).

For each image both sets label, a face of one set counts as found by the other when its best IoU with
the other set's faces is above ``--iou`` (0.4). Prints the counts and the median size (sqrt of area, px)
of the annotated faces the teacher labels lack. Example (a face-mask collection, its snapshot's
``annotations/`` folder extracted with ``git archive``)::

    python benchmarks/label_agreement.py --voc ../data/extra_voc/K0EKJE+Face_mask_dataset/annotations \\
        --images ../data/extra/K0EKJE+Face_mask_dataset --jsonl ../data/extra_labels_s5/K0EKJE+Face_mask_dataset.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from featherface._ops.boxes import box_iou
from featherface.train.data import read_jsonl, read_voc


def agreement(voc_dir: str, images: str, jsonl: str, iou: float = 0.4) -> dict[str, float]:
    """Counts of annotated and teacher faces on the images both label, and how many each finds of the other."""
    annotated = {s.image_path: s for s in read_voc(voc_dir, images)}
    teacher = {s.image_path: s for s in read_jsonl(jsonl, images)}
    common = annotated.keys() & teacher.keys()
    n_ann = n_teacher = ann_found = teacher_found = 0
    missed_sizes: list[float] = []
    for path in common:
        a, t = annotated[path].boxes, teacher[path].boxes
        n_ann, n_teacher = n_ann + len(a), n_teacher + len(t)
        best_a = np.zeros(len(a))
        if len(a) and len(t):
            m = box_iou(torch.tensor(a), torch.tensor(t)).numpy()
            best_a = m.max(1)
            ann_found += int((best_a > iou).sum())
            teacher_found += int((m.max(0) > iou).sum())
        missed = a[best_a <= iou]
        missed_sizes += list(np.sqrt((missed[:, 2] - missed[:, 0]) * (missed[:, 3] - missed[:, 1])))
    return {"images": len(common), "annotated_faces": n_ann, "annotated_found_by_teacher": ann_found,
            "teacher_faces": n_teacher, "teacher_faces_annotated": teacher_found,
            "median_px_of_annotated_faces_teacher_lacks": float(np.median(missed_sizes)) if missed_sizes else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voc", required=True, help="folder of Pascal VOC XML files")
    ap.add_argument("--images", required=True, help="images root (the JSON-lines paths are relative to it)")
    ap.add_argument("--jsonl", required=True, help="teacher labels (featherface pseudo-label --unlabelled)")
    ap.add_argument("--iou", type=float, default=0.4)
    args = ap.parse_args(argv)
    print(json.dumps(agreement(args.voc, args.images, args.jsonl, args.iou), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
