"""WIDER FACE val, official protocol: prediction files and Easy/Medium/Hard AP.

This module is a NumPy re-implementation of the scoring done by the official WIDER FACE
evaluation code (the MATLAB ``eval_tools`` released with the dataset; its global score
normalisation is ``norm_score.m``) as ported to Python by wondervictor
(``WiderFace-Evaluation``, shipped as ``widerface_evaluate/evaluation.py`` with
github biubug6/Pytorch_Retinaface and FeatherFace). The rules are listed below.

Prediction files (as the authors' ``test_widerface.py`` writes them)
--------------------------------------------------------------------
One text file per image at ``<pred_dir>/<event>/<image_stem>.txt``::

    <image_stem>
    <N>
    x y w h score        (N lines, descending score)

``x = int(x1)``, ``y = int(y1)``, ``w = int(x2) - int(x1)``, ``h = int(y2) - int(y1)``
(truncation toward zero) in pixels; the score is the float32 value as printed by NumPy.

Scoring (as ``widerface_evaluate/evaluation.py``)
-------------------------------------------------
1. Read every ``<event>/*.txt``; the image name is line 1 (after the last ``/``) with
   trailing ``'.'``, ``'j'``, ``'p'``, ``'g'`` characters stripped (``rstrip('.jpg')``).
2. Scores are min-max normalised **globally**, over all boxes of all files read
   (min starts at 1, max at 0). If max == min the official code divides 0 by 0; here
   every normalised score is set to 1.0 instead (all boxes survive every threshold).
3. Per setting (easy, medium, hard) and image, the number of faces counted in that
   setting (``gt_list``) is added to ``count_face``, also for images without
   predictions; images with no GT boxes or no predictions are then skipped. Boxes go
   from ``x y w h`` to corners ``x1 y1 x1+w y1+h`` and the IoU uses the "+1"
   convention: area = (x2 - x1 + 1)(y2 - y1 + 1), likewise for the intersection.
4. Greedy matching in file order: each prediction takes the GT box of highest IoU
   (first one on ties). If IoU >= 0.5 and that face is not counted in the setting,
   the prediction is not a proposal; if it is counted and not yet recalled it becomes
   recalled; a further hit on a recalled face remains a proposal (a false positive).
5. At thresholds ``t_k = 1 - (k + 1) / 1000`` the last prediction (in file order)
   with normalised score >= t_k defines proposals(t_k) (non-ignored predictions up to
   it) and tp(t_k) (faces recalled up to it); both are summed over images.
6. precision = tp / proposals (0/0, i.e. no proposal yet, is set to 0: such points have
   recall 0 and precede every other point, so they cannot change the AP),
   recall = tp / count_face.
7. AP is the VOC all-point interpolated area under the precision-recall curve.

Consequence on the val set: a face of negative width (39_Ice_Skating_iceskiing_39_583,
face 8) and two identical faces (21_Festival_Festival_21_604, faces 65 and 104) are all
counted in Hard, so even perfect predictions score Hard AP slightly below 1.

The matching is vectorised: a prediction's best GT box does not depend on the setting,
and the greedy loop is equivalent to "a counted face is recalled by the first
prediction whose best match it is", so it reduces to a cumulative sum.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SETTINGS",
    "GT_ALL_FILE",
    "GT_SETTING_FILES",
    "GroundTruthImage",
    "write_predictions",
    "read_predictions",
    "load_ground_truth",
    "evaluate_widerface",
    "score_detections",
    "plot_pr_curves",
]

logger = logging.getLogger(__name__)

#: The three WIDER FACE difficulty settings, in the order they are reported.
SETTINGS: tuple[str, str, str] = ("easy", "medium", "hard")

#: File holding the boxes, events and image names.
GT_ALL_FILE = "wider_face_val.mat"
#: Files holding, per setting, the 1-based indices of the faces counted in it.
GT_SETTING_FILES: Mapping[str, str] = {
    "easy": "wider_easy_val.mat",
    "medium": "wider_medium_val.mat",
    "hard": "wider_hard_val.mat",
}

_TRAIN_EXTRA = 'pip install "featherface[train]"'
# Bound on the size of one IoU block (predictions x GT boxes), in elements.
_IOU_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class GroundTruthImage:
    """Ground truth of one WIDER FACE val image.

    Attributes:
        event: event directory name, e.g. ``"0--Parade"``.
        name: image stem, e.g. ``"0_Parade_marchingband_1_465"``.
        boxes: float64 array [M, 4] of faces as ``x, y, w, h`` in pixels
            (``face_bbx_list``).
        counted: setting name -> int64 array [K] of **0-based** indices into ``boxes``
            of the faces counted in that setting (the ``.mat`` files store them
            1-based). Faces not listed are ignored in that setting.
    """

    event: str
    name: str
    boxes: np.ndarray
    counted: Mapping[str, np.ndarray]


# --------------------------------------------------------------------------- files


def write_predictions(
    path: str | os.PathLike[str],
    image_stem: str,
    boxes: np.ndarray,
    scores: np.ndarray,
) -> None:
    """Write one prediction file in the official WIDER FACE format.

    Args:
        path: output file, normally ``<save_folder>/<event>/<image_stem>.txt``;
            parent directories are created.
        image_stem: image name without extension, written on line 1.
        boxes: float array [N, 4] of ``x1, y1, x2, y2`` corners in pixels.
        scores: float array [N] of confidences.

    Line 2 is N, then one ``x y w h score`` line per box with ``x = int(x1)``,
    ``y = int(y1)``, ``w = int(x2) - int(x1)``, ``h = int(y2) - int(y1)`` (truncation
    toward zero, as Python's ``int``) and the score printed as its float32 value.
    Boxes are written in descending score order (stable sort, so an already sorted
    input keeps its order and ties keep their input order); the scorer relies on it.

    Raises:
        ValueError: on wrong shapes, non-finite values or a stem with a line break.
    """
    boxes_arr = np.asarray(boxes)
    scores_arr = np.asarray(scores)
    if boxes_arr.ndim != 2 or boxes_arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4], got {boxes_arr.shape}")
    if scores_arr.ndim != 1 or scores_arr.shape[0] != boxes_arr.shape[0]:
        raise ValueError(f"scores must have shape [N] with N={boxes_arr.shape[0]}, got {scores_arr.shape}")
    if not (np.all(np.isfinite(boxes_arr)) and np.all(np.isfinite(scores_arr))):
        raise ValueError("boxes and scores must be finite")
    if not image_stem or "\n" in image_stem or "\r" in image_stem:
        raise ValueError(f"image_stem must be a non-empty single line, got {image_stem!r}")

    order = np.argsort(-scores_arr.astype(np.float64), kind="stable")
    corners = np.trunc(boxes_arr[order].astype(np.float64)).astype(np.int64)
    scores32 = scores_arr[order].astype(np.float32)
    lines = [image_stem, str(len(order))]
    for (x1, y1, x2, y2), score in zip(corners.tolist(), scores32, strict=True):
        lines.append(f"{x1} {y1} {x2 - x1} {y2 - y1} {str(score)}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join(lines) + "\n")


def _normalise_name(line: str) -> str:
    # Official reader: basename of line 1, then ``rstrip('.jpg')`` (a character set).
    return line.strip().split("/")[-1].rstrip(".jpg")


def _read_prediction_file(path: Path) -> tuple[str, np.ndarray]:
    """Parse one prediction file into (normalised name, float64 [N, 5] x y w h score)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: prediction file is not UTF-8 text") from exc
    lines = text.splitlines()
    if len(lines) < 2:
        raise ValueError(
            f"{path}: expected the image name on line 1 and the box count on line 2, got {len(lines)} line(s)"
        )
    name = _normalise_name(lines[0])
    if not name:
        raise ValueError(f"{path}: line 1 must hold the image name, got {lines[0]!r}")
    try:
        declared = int(lines[1].strip())
    except ValueError:
        raise ValueError(f"{path}: line 2 must be the number of boxes, got {lines[1]!r}") from None
    if declared < 0:
        raise ValueError(f"{path}: negative box count {declared}")
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        if not tokens:  # blank lines are skipped, as by the official reader
            continue
        if len(tokens) < 5:
            raise ValueError(f"{path}, line {number}: expected 'x y w h score', got {line!r}")
        rows.append(tokens[:5])  # extra columns are ignored, as by the official reader
        line_numbers.append(number)
    if len(rows) != declared:
        raise ValueError(f"{path}: line 2 declares {declared} boxes but {len(rows)} box lines follow")
    if not rows:
        return name, np.zeros((0, 5), dtype=np.float64)
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        for number, row in zip(line_numbers, rows, strict=True):
            try:
                [float(token) for token in row]
            except ValueError:
                raise ValueError(f"{path}, line {number}: non-numeric value in {' '.join(row)!r}") from None
        raise
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = line_numbers[int(np.flatnonzero(~finite)[0])]
        raise ValueError(f"{path}, line {bad}: non-finite value")
    return name, values


def read_predictions(pred_dir: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """Read a directory of official prediction files.

    Args:
        pred_dir: directory with one sub-directory per event holding ``*.txt`` files
            (other files, hidden entries and files at the top level are skipped).

    Returns:
        event directory name -> image name -> float64 array [N, 5] of
        ``x, y, w, h, score`` rows in file order (pixels, raw scores). The image name is
        line 1 of the file, reduced to its basename, with trailing ``'.'``, ``'j'``,
        ``'p'``, ``'g'`` characters stripped (the official ``rstrip('.jpg')``).

    Raises:
        FileNotFoundError: if ``pred_dir`` is not a directory.
        ValueError: naming the file, on malformed content (missing lines, a count on
            line 2 that does not match the box lines, short or non-numeric box lines)
            or when two files of one event give the same image name.
    """
    root = Path(pred_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"prediction directory not found: {root}")
    predictions: dict[str, dict[str, np.ndarray]] = {}
    for event_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        event: dict[str, np.ndarray] = {}
        sources: dict[str, Path] = {}
        for file in sorted(event_dir.glob("*.txt")):
            if not file.is_file() or file.name.startswith("."):
                continue
            name, boxes = _read_prediction_file(file)
            if name in event:
                raise ValueError(f"{file}: image name {name!r} is also given by {sources[name]}")
            event[name] = boxes
            sources[name] = file
        predictions[event_dir.name] = event
    return predictions


# ------------------------------------------------------------------ ground truth


def _import_loadmat() -> Any:
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise ImportError(f"reading the WIDER FACE ground truth (.mat) needs SciPy: {_TRAIN_EXTRA}") from exc
    return loadmat


def _load_mat(loadmat: Any, path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"WIDER FACE ground-truth file not found: {path}")
    try:
        content = loadmat(str(path), variable_names=list(names))
    except Exception as exc:
        raise ValueError(f"{path}: cannot be read as a MATLAB .mat file ({exc})") from exc
    missing = [name for name in names if name not in content]
    if missing:
        raise ValueError(f"{path}: missing variable(s) {', '.join(missing)}")
    return content


def _cells(value: Any, path: Path, what: str) -> list[Any]:
    """Elements of a MATLAB cell array, in MATLAB (column-major) order."""
    arr = np.asarray(value)
    if arr.dtype != object:
        raise ValueError(f"{path}: {what} is not a cell array (dtype {arr.dtype})")
    return list(arr.ravel(order="F"))


def _mat_string(value: Any, path: Path, what: str) -> str:
    arr = np.asarray(value)
    if arr.dtype.kind != "U":
        raise ValueError(f"{path}: {what} is not a string (dtype {arr.dtype})")
    return "".join(str(part) for part in arr.ravel())


def _mat_boxes(value: Any, path: Path, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{path}: {what} must be an [M, 4] matrix, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def load_ground_truth(gt_dir: str | os.PathLike[str]) -> list[GroundTruthImage]:
    """Load the WIDER FACE val ground truth from the four official ``.mat`` files.

    ``wider_face_val.mat`` gives ``event_list`` (cell [E, 1] of event names),
    ``file_list`` (cell [E, 1] of cells [n_e, 1] of image stems) and ``face_bbx_list``
    (same nesting, each an [M, 4] ``x y w h`` matrix). ``wider_{easy,medium,hard}_val.mat``
    give ``gt_list`` (same nesting, each a [K, 1] vector of 1-based face indices).

    Args:
        gt_dir: directory holding the four files.

    Returns:
        One :class:`GroundTruthImage` per image, in file order (event by event).

    Raises:
        FileNotFoundError: naming the first missing file.
        ImportError: if SciPy is not installed (``pip install "featherface[train]"``).
        ValueError: naming the file, if its structure differs from the above or an
            index in ``gt_list`` is out of range.
    """
    root = Path(gt_dir)
    all_path = root / GT_ALL_FILE
    setting_paths = {setting: root / GT_SETTING_FILES[setting] for setting in SETTINGS}
    for path in (all_path, *setting_paths.values()):
        if not path.is_file():
            raise FileNotFoundError(f"WIDER FACE ground-truth file not found: {path}")
    loadmat = _import_loadmat()

    main = _load_mat(loadmat, all_path, ("face_bbx_list", "event_list", "file_list"))
    events = [
        _mat_string(v, all_path, "event_list entry")
        for v in _cells(main["event_list"], all_path, "event_list")
    ]
    file_cells = _cells(main["file_list"], all_path, "file_list")
    box_cells = _cells(main["face_bbx_list"], all_path, "face_bbx_list")
    if not (len(events) == len(file_cells) == len(box_cells)):
        raise ValueError(
            f"{all_path}: event_list, file_list and face_bbx_list have different lengths "
            f"({len(events)}, {len(file_cells)}, {len(box_cells)})"
        )
    names: list[list[str]] = []
    boxes: list[list[np.ndarray]] = []
    for event, files, event_boxes in zip(events, file_cells, box_cells, strict=True):
        event_names = [
            _mat_string(v, all_path, f"file_list entry of {event}")
            for v in _cells(files, all_path, f"file_list[{event}]")
        ]
        event_box_list = [
            _mat_boxes(v, all_path, f"a face_bbx_list entry of {event}")
            for v in _cells(event_boxes, all_path, f"face_bbx_list[{event}]")
        ]
        if len(event_names) != len(event_box_list):
            raise ValueError(
                f"{all_path}: event {event} has {len(event_names)} files but {len(event_box_list)} box lists"
            )
        names.append(event_names)
        boxes.append(event_box_list)

    counted: dict[str, list[list[np.ndarray]]] = {}
    for setting, path in setting_paths.items():
        content = _load_mat(loadmat, path, ("gt_list",))
        event_cells = _cells(content["gt_list"], path, "gt_list")
        if len(event_cells) != len(events):
            raise ValueError(
                f"{path}: gt_list has {len(event_cells)} events, {all_path.name} has {len(events)}"
            )
        per_event: list[list[np.ndarray]] = []
        for e, cell in enumerate(event_cells):
            entries = _cells(cell, path, f"gt_list[{events[e]}]")
            if len(entries) != len(names[e]):
                raise ValueError(
                    f"{path}: event {events[e]} has {len(entries)} gt_list entries, "
                    f"{all_path.name} has {len(names[e])} images"
                )
            indices_e = []
            for j, entry in enumerate(entries):
                raw = np.asarray(entry).ravel()
                if raw.size and raw.dtype.kind not in "iuf":
                    raise ValueError(f"{path}: gt_list entry of {events[e]}/{names[e][j]} is not numeric")
                idx = raw.astype(np.int64)
                n_boxes = len(boxes[e][j])
                if idx.size and (idx.min() < 1 or idx.max() > n_boxes):
                    raise ValueError(
                        f"{path}: gt_list of {events[e]}/{names[e][j]} has indices outside 1..{n_boxes}"
                    )
                indices_e.append(idx - 1)
            per_event.append(indices_e)
        counted[setting] = per_event

    images: list[GroundTruthImage] = []
    for e, event in enumerate(events):
        for j, name in enumerate(names[e]):
            images.append(
                GroundTruthImage(
                    event=event,
                    name=name,
                    boxes=boxes[e][j],
                    counted={setting: counted[setting][e][j] for setting in SETTINGS},
                )
            )
    logger.debug("loaded WIDER FACE ground truth: %d events, %d images", len(events), len(images))
    return images


# ----------------------------------------------------------------------- scoring


def _score_range(predictions: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[float, float]:
    """Global (min, max) of all scores; min starts at 1 and max at 0 (official)."""
    lo, hi = 1.0, 0.0
    for event in predictions.values():
        for boxes in event.values():
            if len(boxes):
                lo = min(lo, float(np.min(boxes[:, 4])))
                hi = max(hi, float(np.max(boxes[:, 4])))
    return lo, hi


def _best_overlaps(pred_xywh: np.ndarray, gt_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU ("+1" convention) and index of the first best GT box, per prediction.

    Both inputs are float64 ``x, y, w, h``: predictions [N, 4], GT [M, 4], M >= 1.
    Returns float64 [N] and int64 [N].
    """
    px1, py1 = pred_xywh[:, 0], pred_xywh[:, 1]
    px2, py2 = pred_xywh[:, 2] + px1, pred_xywh[:, 3] + py1
    gx1, gy1 = gt_xywh[:, 0], gt_xywh[:, 1]
    gx2, gy2 = gt_xywh[:, 2] + gx1, gt_xywh[:, 3] + gy1
    g_area = (gx2 - gx1 + 1) * (gy2 - gy1 + 1)
    p_area = (px2 - px1 + 1) * (py2 - py1 + 1)
    n, m = len(pred_xywh), len(gt_xywh)
    best_iou = np.empty(n, dtype=np.float64)
    best_idx = np.empty(n, dtype=np.int64)
    step = max(1, _IOU_BLOCK_ELEMENTS // m)
    for start in range(0, n, step):
        s = slice(start, start + step)
        iw = np.minimum(px2[s, None], gx2[None, :]) - np.maximum(px1[s, None], gx1[None, :]) + 1
        ih = np.minimum(py2[s, None], gy2[None, :]) - np.maximum(py1[s, None], gy1[None, :]) + 1
        inter = iw * ih
        union = p_area[s, None] + g_area[None, :] - inter
        valid = (iw > 0) & (ih > 0) & (union > 0)
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=valid)
        arg = np.argmax(iou, axis=1)
        best_idx[s] = arg
        best_iou[s] = iou[np.arange(len(arg)), arg]
    return best_iou, best_idx


def _voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point interpolated AP of a curve given at decreasing thresholds."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def _score(
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    ground_truth: list[GroundTruthImage],
    iou_threshold: float,
    num_thresholds: int,
    settings: Sequence[str] = SETTINGS,
) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    """Steps 2-7 of the protocol; returns setting -> (AP, precision [T], recall [T])."""
    lo, hi = _score_range(predictions)
    degenerate = hi == lo
    if degenerate:
        logger.warning("all prediction scores are equal (%g): every normalised score is set to 1.0", hi)
    thresholds = 1.0 - (np.arange(num_thresholds, dtype=np.float64) + 1.0) / num_thresholds
    neg_thresholds = -thresholds  # increasing, for searchsorted

    count_face = dict.fromkeys(settings, 0)
    proposals = {s: np.zeros(num_thresholds, dtype=np.int64) for s in settings}
    true_pos = {s: np.zeros(num_thresholds, dtype=np.int64) for s in settings}
    missing = 0
    for image in ground_truth:
        for setting in settings:
            count_face[setting] += len(image.counted[setting])
        pred = predictions.get(image.event, {}).get(image.name)
        if pred is None:
            missing += 1
            continue
        n_gt = len(image.boxes)
        if n_gt == 0 or len(pred) == 0:
            continue
        if degenerate:
            scores = np.ones(len(pred), dtype=np.float64)
        else:
            scores = (pred[:, 4] - lo) / (hi - lo)
        # Number of leading predictions up to the last one with score >= t: the
        # suffix maximum is non-increasing and is >= t exactly up to that prediction.
        suffix_max = np.maximum.accumulate(scores[::-1])[::-1]
        cut = np.searchsorted(-suffix_max, neg_thresholds, side="right")

        best_iou, best_gt = _best_overlaps(pred[:, :4], image.boxes)
        hit = best_iou >= iou_threshold
        for setting in settings:
            counts = np.zeros(n_gt, dtype=bool)
            counts[image.counted[setting]] = True
            target_counted = counts[best_gt]
            is_proposal = ~(hit & ~target_counted)
            recalls = np.zeros(len(pred), dtype=bool)
            hit_idx = np.flatnonzero(hit & target_counted)
            if hit_idx.size:
                _, first = np.unique(best_gt[hit_idx], return_index=True)
                recalls[hit_idx[first]] = True
            cum_prop = np.concatenate(([0], np.cumsum(is_proposal)))
            cum_tp = np.concatenate(([0], np.cumsum(recalls)))
            proposals[setting] += cum_prop[cut]
            true_pos[setting] += cum_tp[cut]
    if missing:
        logger.warning("%d of %d ground-truth images have no prediction file", missing, len(ground_truth))

    known = {(image.event, image.name) for image in ground_truth}
    extra = sum(1 for ev, files in predictions.items() for nm in files if (ev, nm) not in known)
    if extra:
        logger.warning("%d prediction files match no ground-truth image and are not scored", extra)

    results: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}
    for setting in settings:
        prop = proposals[setting].astype(np.float64)
        tp = true_pos[setting].astype(np.float64)
        precision = np.divide(tp, prop, out=np.zeros_like(tp), where=prop > 0)
        if count_face[setting] > 0:
            recall = tp / count_face[setting]
        else:
            logger.warning("no face is counted in the %s setting: its AP is 0", setting)
            recall = np.zeros_like(tp)
        results[setting] = (_voc_ap(recall, precision), precision, recall)
    return results


def score_detections(
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    ground_truth: list[GroundTruthImage],
    *,
    settings: Sequence[str] = SETTINGS,
    iou_threshold: float = 0.5,
    num_thresholds: int = 1000,
) -> dict[str, float]:
    """AP per setting of in-memory predictions, with the protocol of :func:`evaluate_widerface`.

    Args:
        predictions: event -> image name -> ``float [K, 5]`` rows ``x, y, w, h, score`` (pixels),
            sorted by descending score.
        ground_truth: the images to score; each one's ``counted`` names the faces counted per
            setting (faces not counted in a setting are ignored there: a prediction on them is
            neither a hit nor a false positive).
        settings: the keys of ``counted`` to score.

    Returns:
        setting -> AP as a fraction in [0, 1].
    """
    scored = _score(predictions, ground_truth, iou_threshold, int(num_thresholds), tuple(settings))
    return {setting: scored[setting][0] for setting in settings}


def evaluate_widerface(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    *,
    iou_threshold: float = 0.5,
    num_thresholds: int = 1000,
    return_curves: bool = False,
    images: Collection[str] | None = None,
) -> dict[str, Any]:
    """Score a directory of prediction files with the WIDER FACE val official protocol.

    Args:
        pred_dir: ``<pred_dir>/<event>/<image>.txt`` files (see :func:`write_predictions`).
        gt_dir: directory with ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``.
        iou_threshold: minimum IoU ("+1" convention) for a match.
        num_thresholds: number of score thresholds ``t_k = 1 - (k + 1) / num_thresholds``.
        return_curves: also return the precision-recall curves.
        images: score only these ground-truth images (names without extension), e.g. a fixed
            subset for learning curves; the faces of other images are then not counted. Such a
            subset AP is not comparable with the full-val AP. ``None``: all 3,226 images.

    Returns:
        ``{"easy": ap, "medium": ap, "hard": ap}`` with AP as fractions in [0, 1];
        with ``return_curves`` also ``"curves"``: setting -> (precision, recall), two
        float64 arrays [num_thresholds] ordered by decreasing threshold.

    Images of the ground truth without a prediction file count their faces (they cap
    the recall); prediction files of images absent from the ground truth are not
    scored, but, as in the official code, their scores take part in the global
    min-max normalisation.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if num_thresholds < 1:
        raise ValueError(f"num_thresholds must be >= 1, got {num_thresholds}")
    predictions = read_predictions(pred_dir)
    ground_truth = load_ground_truth(gt_dir)
    if images is not None:
        wanted = set(images)
        ground_truth = [g for g in ground_truth if g.name in wanted]
        unknown = wanted - {g.name for g in ground_truth}
        if unknown:
            raise ValueError(f"{len(unknown)} requested images are not in the ground truth, e.g. {sorted(unknown)[:3]}")
    scored = _score(predictions, ground_truth, iou_threshold, int(num_thresholds))
    result: dict[str, Any] = {setting: scored[setting][0] for setting in SETTINGS}
    logger.info(
        "WIDER FACE val AP: easy %.4f, medium %.4f, hard %.4f",
        result["easy"],
        result["medium"],
        result["hard"],
    )
    if return_curves:
        result["curves"] = {setting: (scored[setting][1], scored[setting][2]) for setting in SETTINGS}
    return result


def plot_pr_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> None:
    """Save a PNG with one precision-recall curve per setting, AP in the legend.

    Args:
        curves: setting -> (precision [T], recall [T]) as returned under ``"curves"``
            by :func:`evaluate_widerface` with ``return_curves=True``.
        path: output PNG file; parent directories are created.
        title: optional figure title.

    Raises:
        ImportError: if matplotlib is not installed (``pip install "featherface[train]"``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"plotting precision-recall curves needs matplotlib: {_TRAIN_EXTRA}") from exc

    fig = Figure(figsize=(6, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for setting, (precision, recall) in curves.items():
        precision = np.asarray(precision, dtype=np.float64)
        recall = np.asarray(recall, dtype=np.float64)
        ap = _voc_ap(recall, precision)
        ax.plot(recall, precision, label=f"{setting}: AP {100.0 * ap:.1f}%")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
