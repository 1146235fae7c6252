"""YuNet, the face detector OpenCV ships as ``cv2.FaceDetectorYN``, on WIDER FACE val with this project's
protocol and scorer: the peer the packaged ``v2_ultra`` is measured against.

Every image at its original size, score threshold 0.02, NMS at IoU 0.4, no top-k cap in practice
(5,000), boxes ``(x, y, w, h)`` from YuNet turned into corners ``(x1, y1, x2, y2) = (x, y, x + w, y + h)``,
written in the official per-image format and scored by :func:`featherface.train.ap.evaluate_widerface`
(Easy / Medium / Hard AP, IoU 0.5). The model file is opencv_zoo's ``face_detection_yunet`` ONNX (MIT);
it is not part of featherface: pass its path (users get it from OpenCV's model zoo)::

    python benchmarks/yunet_widerface.py --model ../shared/data/peers/face_detection_yunet_2026may.onnx \\
        --widerface ../data/widerface --threads 1 --json

Needs the ``train`` extra (the scorer reads the ``.mat`` ground truth with scipy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

from featherface.train.ap import evaluate_widerface, write_predictions
from featherface.train.data import load_image_bgr
from featherface.train.second_labeller import create_yunet, yunet_faces
from featherface.train.widerface_eval import fixed_subset, ground_truth_dir, val_images

SCORE_THRESHOLD = 0.02
NMS_THRESHOLD = 0.4
TOP_K = 5000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="YuNet ONNX file (opencv_zoo face_detection_yunet)")
    ap.add_argument("--widerface", required=True, help="folder with val/images/<event>/*.jpg and ground_truth/")
    ap.add_argument("--subset", type=int, default=None, help="fixed seeded subset of N images (not the benchmark)")
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    ap.add_argument("--out", default=None, help="keep the prediction files here")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)

    model = Path(args.model)
    try:
        detector = create_yunet(model, SCORE_THRESHOLD, NMS_THRESHOLD, TOP_K)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    cv2.setNumThreads(args.threads)
    files = fixed_subset(val_images(args.widerface), args.subset)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t0 = time.perf_counter()
        n_boxes = 0
        for path in files:
            boxes, _, scores = yunet_faces(detector, load_image_bgr(path))  # the loader featherface's own runs use
            write_predictions(out / path.parent.name / f"{path.stem}.txt", path.stem, boxes, scores)
            n_boxes += len(boxes)
        seconds = time.perf_counter() - t0
        result = evaluate_widerface(out, ground_truth_dir(args.widerface), images={p.stem for p in files})
    record = {"easy": float(result["easy"]), "medium": float(result["medium"]), "hard": float(result["hard"]),
              "images": len(files), "boxes": n_boxes, "seconds": round(seconds, 1),
              "model": model.name, "opencv": cv2.__version__, "threads": args.threads,
              "protocol": "WIDER FACE val, original image size, score > 0.02, YuNet's NMS at IoU 0.4, top-k 5000, "
                          "official AP (featherface.train.ap)"}
    if args.json:
        print(json.dumps(record))
    else:
        print(f"YuNet ({model.name}, OpenCV {cv2.__version__}) on {len(files)} WIDER FACE val images: "
              f"easy {100 * record['easy']:.2f}, medium {100 * record['medium']:.2f}, hard {100 * record['hard']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
