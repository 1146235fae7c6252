"""The dev split: the fixed held-out set on which every training choice is made (never WIDER FACE val).

WIDER FACE val is the benchmark: it is measured once, for the weights that ship. Stages, schedules,
technique switches, checkpoints and data sources are chosen on this split instead:

* ``wider``: ``n_wider`` images of WIDER FACE *train* with their official boxes (faces flagged invalid
  are neither counted nor punished), left out of training through ``DataSource.exclude``;
* ``extra``: ``n_extra`` images of each source of unlabelled photographs, labelled by the teacher with
  the same :class:`~featherface.train.pseudo.TeacherLabelPolicy` as the training labels (its unsure
  detections are ignore regions), left out of training the same way.

Both are drawn with a fixed seed from the sorted file listings, so the split depends only on the
files, not on when or where it is made. The score is the WIDER FACE protocol's AP (global score
normalisation, IoU 0.5 with the "+1" convention, 1,000 thresholds, VOC all-point AP) over three face
sizes instead of the val difficulty lists, which exist only for val: faces whose box is at least
50 px high (``large``), at least 20 px (``medium``) and every face (``all``). Faces outside a setting
are ignored in it, as uncounted faces are in the official code.

Command line::

    python -m featherface.train.devset make DEV_DIR --widerface ROOT --extra EXTRA_ROOT --teacher V1
    python -m featherface.train.devset score DEV_DIR --weights FOLDER_OR_MODEL
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featherface.train.ap import GroundTruthImage, score_detections
from featherface.train.data import FaceSample, image_files, read_jsonl, read_widerface_bbx_gt

__all__ = ["DEV_PROTOCOL", "SIZE_SETTINGS", "make_dev_split", "load_dev_split", "score_on_dev", "main"]

#: Minimum face height (pixels of the original image) counted in each dev setting.
SIZE_SETTINGS: dict[str, float] = {"large": 50.0, "medium": 20.0, "all": 0.0}
DEV_PROTOCOL = ("dev split (WIDER FACE train hold-out with official boxes + teacher-labelled extra photos), "
                "original image size, score > 0.02, NMS IoU 0.4 (+1), AP at IoU 0.5 for faces >= 50 px / "
                ">= 20 px / all")


def _pick(items: Sequence[str], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(items))[: min(n, len(items))]
    return sorted(items[i] for i in idx)


def make_dev_split(
    out_dir: str | os.PathLike,
    widerface_root: str | os.PathLike,
    extra_root: str | os.PathLike | None,
    teacher: Any = None,
    *,
    n_wider: int = 100,
    n_extra: int = 40,
    seed: int = 0,
) -> dict[str, int]:
    """Write the dev split into ``out_dir``.

    Files: ``wider_exclude.txt`` (image paths relative to ``ROOT/train/images``), per extra source
    ``extra_exclude_<source>.txt`` (paths relative to ``EXTRA_ROOT/<source>``) and ``extra_dev.jsonl``
    (the teacher's labels of the extra dev images, paths relative to ``EXTRA_ROOT``). ``teacher`` is a
    :class:`~featherface.FaceDetector`; needed only with ``extra_root``.
    """
    from featherface.train.data import load_image_bgr
    from featherface.train.pseudo import TeacherLabelPolicy, teacher_labels

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(widerface_root) / "train"
    samples = read_widerface_bbx_gt(root / "wider_face_train_bbx_gt.txt", root / "images", require_images=True)
    names = sorted(s.image_path.relative_to(root / "images").as_posix() for s in samples)
    wider = _pick(names, n_wider, seed)
    (out / "wider_exclude.txt").write_text("\n".join(wider) + "\n", encoding="utf-8")
    counts = {"wider": len(wider)}
    if extra_root is not None:
        if teacher is None:
            raise ValueError("make_dev_split: the extra photos need a teacher to label them")
        extra = Path(extra_root)
        policy = TeacherLabelPolicy()
        with (out / "extra_dev.jsonl").open("w", encoding="utf-8") as handle:
            for source in sorted(p for p in extra.iterdir() if p.is_dir()):
                files = sorted(p.relative_to(source).as_posix() for p in image_files(source))
                chosen = _pick(files, n_extra, seed)
                (out / f"extra_exclude_{source.name}.txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")
                for rel in chosen:
                    image = load_image_bgr(source / rel)
                    boxes, landmarks, _, ignore = teacher_labels(teacher, image, policy)
                    record = {"image": f"{source.name}/{rel}",
                              "faces": [{"box": [float(v) for v in b], "landmarks": None} for b in boxes],
                              "ignore": [[float(v) for v in b] for b in ignore]}
                    handle.write(json.dumps(record) + "\n")
                counts[source.name] = len(chosen)
    (out / "split.json").write_text(json.dumps({"seed": seed, "n_wider": n_wider, "n_extra": n_extra,
                                                "counts": counts}, indent=1), encoding="utf-8")
    return counts


def load_dev_split(
    dev_dir: str | os.PathLike, widerface_root: str | os.PathLike, extra_root: str | os.PathLike | None
) -> dict[str, list[tuple[FaceSample, np.ndarray]]]:
    """``{"wider": [(sample, uncounted boxes [K, 4])], "extra": [...]}``: each dev image with its counted
    faces and the boxes that are neither counted nor punished (invalid WIDER faces, teacher ignore regions)."""
    dev = Path(dev_dir)
    root = Path(widerface_root) / "train"
    wanted = set((dev / "wider_exclude.txt").read_text(encoding="utf-8").split())
    valid = read_widerface_bbx_gt(root / "wider_face_train_bbx_gt.txt", root / "images")
    every = read_widerface_bbx_gt(root / "wider_face_train_bbx_gt.txt", root / "images", keep_invalid=True)
    parts: dict[str, list[tuple[FaceSample, np.ndarray]]] = {"wider": [], "extra": []}
    for s_valid, s_all in zip(valid, every, strict=True):
        if s_valid.image_path.relative_to(root / "images").as_posix() not in wanted:
            continue
        kept = {tuple(b) for b in s_valid.boxes.tolist()}
        invalid = np.array([b for b in s_all.boxes.tolist() if tuple(b) not in kept], np.float32).reshape(-1, 4)
        parts["wider"].append((s_valid, invalid))
    if extra_root is not None and (dev / "extra_dev.jsonl").exists():
        for s in read_jsonl(dev / "extra_dev.jsonl", extra_root):
            parts["extra"].append((s, s.ignore))
    return parts


def _ground_truth(items: Sequence[tuple[FaceSample, np.ndarray]], prefix: str) -> list[GroundTruthImage]:
    gts = []
    for i, (sample, uncounted) in enumerate(items):
        boxes = np.concatenate([sample.boxes, uncounted]).astype(np.float64)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1) if len(boxes) else boxes.reshape(0, 4)
        heights = sample.boxes[:, 3] - sample.boxes[:, 1]
        counted = {k: np.flatnonzero(heights >= h).astype(np.int64) for k, h in SIZE_SETTINGS.items()}
        gts.append(GroundTruthImage(event=prefix, name=f"{i:05d}", boxes=xywh, counted=counted))
    return gts


def score_on_dev(detector: Any, parts: dict[str, list[tuple[FaceSample, np.ndarray]]]) -> dict[str, dict[str, float]]:
    """AP (fractions) per part (``wider``, ``extra``) and for both together (``dev``), per size setting.

    The detector runs with the WIDER FACE protocol options (original size, score > 0.02, "+1" NMS).
    """
    from featherface.train.widerface_eval import PROTOCOL_OPTIONS, vars_of

    opts = vars_of(PROTOCOL_OPTIONS)
    preds: dict[str, dict[str, np.ndarray]] = {}
    gts: dict[str, list[GroundTruthImage]] = {}
    for part, items in parts.items():
        if not items:
            continue
        gts[part] = _ground_truth(items, part)
        preds[part] = {}
        for gt, (sample, _) in zip(gts[part], items, strict=True):
            faces = detector.detect(sample.image_path, **opts)
            rows = np.array([[f.box[0], f.box[1], f.box[2] - f.box[0], f.box[3] - f.box[1], f.score] for f in faces],
                            np.float64).reshape(-1, 5)
            preds[part][gt.name] = rows
    result: dict[str, dict[str, float]] = {}
    for part in gts:
        result[part] = score_detections({part: preds[part]}, gts[part], settings=tuple(SIZE_SETTINGS))
    if len(gts) > 1:
        result["dev"] = score_detections(preds, [g for part in gts for g in gts[part]], settings=tuple(SIZE_SETTINGS))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    import featherface

    parser = argparse.ArgumentParser(prog="python -m featherface.train.devset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make", help="write the dev split")
    p.add_argument("dev_dir")
    p.add_argument("--widerface", required=True, help="root with train/images and train/wider_face_train_bbx_gt.txt")
    p.add_argument("--extra", help="root of the extra photographs (one folder per source)")
    p.add_argument("--teacher", help="teacher for the extra photos: reference V1 .safetensors or weights folder")
    p.add_argument("--n-wider", type=int, default=100)
    p.add_argument("--n-extra", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("score", help="AP of a detector on the dev split")
    p.add_argument("dev_dir")
    p.add_argument("--widerface", required=True)
    p.add_argument("--extra")
    p.add_argument("--weights", help="weights folder (default: the packaged weights of --model)")
    p.add_argument("--model", default="v2_ultra")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="also write the result here")
    args = parser.parse_args(argv)
    if args.cmd == "make":
        teacher = None
        if args.extra:
            import torch

            from featherface._api import FaceDetector
            from featherface.train.checkpoint import load_teacher

            net = load_teacher(args.teacher, torch.device("cpu"))
            teacher = FaceDetector(net, net.config, backend="onnxruntime", num_threads=args.threads,  # type: ignore[arg-type]
                                   weights_source="teacher")
        print(json.dumps(make_dev_split(args.dev_dir, args.widerface, args.extra, teacher,
                                        n_wider=args.n_wider, n_extra=args.n_extra)))
        return 0
    det = featherface.load_model(None if args.weights else args.model, weights=args.weights, device="cpu",
                                 num_threads=args.threads)
    res = score_on_dev(det, load_dev_split(args.dev_dir, args.widerface, args.extra))
    for part, aps in res.items():
        print(f"{part:6s} " + "  ".join(f"{k} {100 * v:.2f}" for k, v in aps.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
