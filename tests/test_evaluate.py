"""Tests for the WIDER FACE val scorer (featherface.train.ap).

Small cases use ground truth written by the test itself as ``.mat`` files with the same
nested-cell structure as the official ones; expected APs are computed by hand in the
comments. A slow loop-for-loop reference written from the protocol description cross-checks
the vectorised scorer on random data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from featherface.train.ap import (
    SETTINGS,
    GroundTruthImage,
    evaluate_widerface,
    load_ground_truth,
    plot_pr_curves,
    read_predictions,
    write_predictions,
)
from tests.conftest import shared_file

sio = pytest.importorskip("scipy.io", reason="scipy (the train extra) is needed to write .mat fixtures")

GT_REL = "data/widerface/labels/ground_truth"
ALL_COUNTED = "all"


# ------------------------------------------------------------------ fixtures


def _cell(items: Sequence[object]) -> np.ndarray:
    """A MATLAB cell column [n, 1] holding ``items``."""
    cell = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cell[i, 0] = item
    return cell


def write_gt(gt_dir: Path, images: Sequence[dict]) -> Path:
    """Write the four ground-truth .mat files in the official nested-cell layout.

    ``images``: dicts with ``event``, ``name``, ``boxes`` ([M, 4] x y w h) and ``counted``
    (setting -> 1-based face indices, or the string ``"all"`` for every face in all settings).
    Images of one event must be contiguous.
    """
    events: list[str] = []
    per_event: dict[str, list[dict]] = {}
    for image in images:
        if image["event"] not in per_event:
            events.append(image["event"])
            per_event[image["event"]] = []
        per_event[image["event"]].append(image)

    def counted(image: dict, setting: str) -> list[int]:
        if image["counted"] == ALL_COUNTED:
            return list(range(1, len(image["boxes"]) + 1))
        return list(image["counted"].get(setting, []))

    event_list = _cell([e for e in events])
    file_list = _cell([_cell([im["name"] for im in per_event[e]]) for e in events])
    face_bbx_list = _cell(
        [
            _cell([np.asarray(im["boxes"], dtype=np.int32).reshape(-1, 4) for im in per_event[e]])
            for e in events
        ]
    )
    gt_dir.mkdir(parents=True, exist_ok=True)
    sio.savemat(
        gt_dir / "wider_face_val.mat",
        {"event_list": event_list, "file_list": file_list, "face_bbx_list": face_bbx_list},
    )
    for setting in SETTINGS:
        gt_list = _cell(
            [
                _cell(
                    [np.asarray(counted(im, setting), dtype=np.uint16).reshape(-1, 1) for im in per_event[e]]
                )
                for e in events
            ]
        )
        sio.savemat(
            gt_dir / f"wider_{setting}_val.mat",
            {"event_list": event_list, "file_list": file_list, "gt_list": gt_list},
        )
    return gt_dir


def write_raw(pred_dir: Path, event: str, name: str, rows: Iterable[Sequence[float]]) -> Path:
    """Write a prediction file verbatim, rows ``x y w h score`` in the given order."""
    rows = list(rows)
    lines = [name, str(len(rows))] + [
        " ".join(repr(v) if isinstance(v, float) else str(v) for v in r) for r in rows
    ]
    path = pred_dir / event / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def gt_as_predictions(pred_dir: Path, images: Sequence[dict], scores: Sequence[float] | None = None) -> None:
    """One prediction per GT face (x y w h copied), with the given or a constant score."""
    i = 0
    for image in images:
        rows = []
        for box in np.asarray(image["boxes"]).reshape(-1, 4).tolist():
            score = 1.0 if scores is None else scores[i]
            i += 1
            rows.append([*box, score])
        rows.sort(key=lambda r: -r[4])
        write_raw(pred_dir, image["event"], image["name"], rows)


def aps(result: Mapping[str, object]) -> tuple[float, float, float]:
    return tuple(float(result[s]) for s in SETTINGS)  # type: ignore[return-value]


def evaluate(tmp_path: Path, images: Sequence[dict], pred_dir: Path, **kwargs):
    gt_dir = write_gt(tmp_path / "gt", images)
    return evaluate_widerface(pred_dir, gt_dir, **kwargs)


# Three small images over two events; face 3 of image a and face 2 of image c are
# ignored in easy, faces of b are counted only in hard.
SMALL = [
    {
        "event": "0--Parade",
        "name": "0_Parade_a_1",
        "boxes": [[10, 10, 30, 40], [100, 20, 25, 25], [200, 200, 8, 9]],
        "counted": {"easy": [1, 2], "medium": [1, 2, 3], "hard": [1, 2, 3]},
    },
    {
        "event": "0--Parade",
        "name": "0_Parade_b_2",
        "boxes": [[5, 5, 6, 6], [50, 60, 7, 5]],
        "counted": {"hard": [1, 2]},
    },
    {
        "event": "1--Handshaking",
        "name": "1_Handshaking_c_3",
        "boxes": [[40, 40, 60, 80], [300, 10, 12, 14]],
        "counted": {"easy": [1], "medium": [1, 2], "hard": [1, 2]},
    },
]


# ------------------------------------------------------------- ground truth


def test_load_ground_truth_reads_back_written_structure(tmp_path: Path) -> None:
    gt_dir = write_gt(tmp_path / "gt", SMALL)
    loaded = load_ground_truth(gt_dir)
    assert [(g.event, g.name) for g in loaded] == [(im["event"], im["name"]) for im in SMALL]
    for got, want in zip(loaded, SMALL, strict=True):
        assert isinstance(got, GroundTruthImage)
        assert got.boxes.dtype == np.float64 and got.boxes.shape == (len(want["boxes"]), 4)
        np.testing.assert_array_equal(got.boxes, np.asarray(want["boxes"], dtype=np.float64))
        for setting in SETTINGS:
            expected = np.asarray(want["counted"].get(setting, []), dtype=np.int64) - 1  # 0-based
            np.testing.assert_array_equal(got.counted[setting], expected)


@pytest.mark.parametrize(
    "missing", ["wider_face_val.mat", "wider_easy_val.mat", "wider_medium_val.mat", "wider_hard_val.mat"]
)
def test_missing_ground_truth_file_is_named(tmp_path: Path, missing: str) -> None:
    gt_dir = write_gt(tmp_path / "gt", SMALL)
    (gt_dir / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        load_ground_truth(gt_dir)


def test_out_of_range_gt_index_is_rejected(tmp_path: Path) -> None:
    bad = [{**SMALL[1], "counted": {"easy": [3]}}]  # image has 2 faces
    gt_dir = write_gt(tmp_path / "gt", bad)
    with pytest.raises(ValueError, match="wider_easy_val.mat"):
        load_ground_truth(gt_dir)


def test_missing_scipy_names_the_train_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gt_dir = write_gt(tmp_path / "gt", SMALL)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match=r"featherface\[train\]"):
        load_ground_truth(gt_dir)


# ---------------------------------------------------------------- known answers


def test_ground_truth_as_predictions_gives_ap_one(tmp_path: Path) -> None:
    n_faces = sum(len(im["boxes"]) for im in SMALL)
    scores = np.linspace(0.95, 0.1, n_faces).tolist()
    gt_as_predictions(tmp_path / "pred", SMALL, scores)
    result = evaluate(tmp_path, SMALL, tmp_path / "pred", return_curves=True)
    assert aps(result) == (1.0, 1.0, 1.0)
    for setting in SETTINGS:
        precision, recall = result["curves"][setting]
        assert precision.shape == recall.shape == (1000,)
        assert recall[-1] == 1.0


def test_equal_scores_are_normalised_to_one_not_nan(tmp_path: Path) -> None:
    # max == min (0.7): the official code would divide 0 by 0; every normalised score is 1.0.
    gt_as_predictions(tmp_path / "pred", SMALL, [0.7] * 7)
    result = evaluate(tmp_path, SMALL, tmp_path / "pred", return_curves=True)
    assert aps(result) == (1.0, 1.0, 1.0)
    for precision, recall in result["curves"].values():
        assert np.isfinite(precision).all() and np.isfinite(recall).all()
        assert (recall == 1.0).all()  # every box passes even the first threshold 0.999


# One image, one counted face F at [0, 0, 20, 20], plus an ignored face G far away.
IGNORE_CASE = [
    {
        "event": "2--Demonstration",
        "name": "2_Demonstration_1",
        "boxes": [[0, 0, 20, 20], [500, 500, 20, 20]],
        "counted": {s: [1] for s in SETTINGS},
    }
]
TP = [0, 0, 20, 20]
FP = [200, 200, 20, 20]


def test_match_on_ignored_face_neither_helps_nor_hurts(tmp_path: Path) -> None:
    base = [[*FP, 1.0], [*TP, 0.5], [*FP, 0.0]]
    # Without the ignored-face hit: t in (0.5, 1) -> P 0 R 0; t in (0, 0.5] -> P 1/2 R 1;
    # t = 0 -> P 1/3 R 1. VOC: AP = 1 * 1/2.
    write_raw(tmp_path / "without", "2--Demonstration", "2_Demonstration_1", base)
    # The same with a hit on the ignored face at the top score: not a proposal.
    write_raw(tmp_path / "with", "2--Demonstration", "2_Demonstration_1", [[500, 500, 20, 20, 1.0], *base])
    # Control: the same box and score on background is a false positive and does hurt.
    write_raw(tmp_path / "control", "2--Demonstration", "2_Demonstration_1", [[*FP, 1.0], *base])
    gt_dir = write_gt(tmp_path / "gt", IGNORE_CASE)
    without = aps(evaluate_widerface(tmp_path / "without", gt_dir))
    with_ignored = aps(evaluate_widerface(tmp_path / "with", gt_dir))
    control = aps(evaluate_widerface(tmp_path / "control", gt_dir))
    assert without == pytest.approx((0.5, 0.5, 0.5), abs=1e-12)
    assert with_ignored == without
    # control: (0.5, 1) -> P 0; (0, 0.5] -> P 1/3 R 1; AP = 1/3.
    assert control == pytest.approx((1 / 3,) * 3, abs=1e-12)


# Two counted faces that overlap each other (IoU 0.826 with the +1 convention).
DUPLICATE_CASE = [
    {
        "event": "3--Riot",
        "name": "3_Riot_1",
        "boxes": [[10, 10, 20, 20], [12, 10, 20, 20]],
        "counted": ALL_COUNTED,
    }
]


def test_second_hit_on_recalled_face_is_a_false_positive(tmp_path: Path) -> None:
    # p1 = face 1 (score 1.0), p2 = face 1 again (0.5), p3 = face 2 (0.0).
    # p2's best match is face 1, already recalled: it stays a proposal -> false positive
    # (a VOC-style matcher that moved p2 on to face 2 would score AP 1).
    # t in (0.5, 1): P 1 R 1/2; t in (0, 0.5]: P 1/2 R 1/2; t = 0: P 2/3 R 1.
    # VOC: 1/2 * 1 + 1/2 * 2/3 = 5/6.
    write_raw(
        tmp_path / "dup",
        "3--Riot",
        "3_Riot_1",
        [[10, 10, 20, 20, 1.0], [10, 10, 20, 20, 0.5], [12, 10, 20, 20, 0.0]],
    )
    write_raw(tmp_path / "nodup", "3--Riot", "3_Riot_1", [[10, 10, 20, 20, 1.0], [12, 10, 20, 20, 0.0]])
    gt_dir = write_gt(tmp_path / "gt", DUPLICATE_CASE)
    dup = aps(evaluate_widerface(tmp_path / "dup", gt_dir))
    nodup = aps(evaluate_widerface(tmp_path / "nodup", gt_dir))
    assert nodup == (1.0, 1.0, 1.0)
    assert dup == pytest.approx((5 / 6,) * 3, abs=1e-12)
    assert all(d < n for d, n in zip(dup, nodup, strict=True))


TWO_IMAGES = [
    {"event": "4--Dancing", "name": "4_Dancing_A", "boxes": [[0, 0, 30, 30]], "counted": ALL_COUNTED},
    {"event": "4--Dancing", "name": "4_Dancing_B", "boxes": [[0, 0, 30, 30]], "counted": ALL_COUNTED},
]
FAR = [400, 400, 30, 30]


def test_score_normalisation_is_global_not_per_image(tmp_path: Path) -> None:
    # Raw scores packed into [0.5, 0.5003]: A = [TP 0.5002, FP 0.5], B = [FP 0.5003, TP 0.50025].
    # Global min-max: B-FP 1, B-TP 5/6, A-TP 2/3, A-FP 0.
    #   t in (5/6, 1): P 0 R 0; (2/3, 5/6]: P 1/2 R 1/2; (0, 2/3]: P 2/3 R 1; t = 0: P 1/2 R 1.
    #   VOC: 1/2 * 2/3 + 1/2 * 2/3 = 2/3.
    # Per image it would be A = [1, 0], B = [1, 0]: P 1/2 R 1/2 then P 1/2 R 1 -> AP 1/2
    # (and raw, unnormalised scores also give 1/2: all boxes first pass at t = 0.5).
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_A", [[0, 0, 30, 30, "0.5002"], [*FAR, "0.5"]])
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_B", [[*FAR, "0.5003"], [0, 0, 30, 30, "0.50025"]])
    write_raw(tmp_path / "per_image", "4--Dancing", "4_Dancing_A", [[0, 0, 30, 30, 1.0], [*FAR, 0.0]])
    write_raw(tmp_path / "per_image", "4--Dancing", "4_Dancing_B", [[*FAR, 1.0], [0, 0, 30, 30, 0.0]])
    gt_dir = write_gt(tmp_path / "gt", TWO_IMAGES)
    assert aps(evaluate_widerface(tmp_path / "p", gt_dir)) == pytest.approx((2 / 3,) * 3, abs=1e-12)
    # The case discriminates: per-image normalised scores give another answer.
    assert aps(evaluate_widerface(tmp_path / "per_image", gt_dir)) == pytest.approx((0.5,) * 3, abs=1e-12)


@pytest.mark.parametrize("b_file", ["missing", "empty"])
def test_images_without_predictions_still_count_their_faces(tmp_path: Path, b_file: str) -> None:
    # Only image A is detected: precision 1 up to recall 1/2 -> AP 1/2.
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_A", [[0, 0, 30, 30, 0.9]])
    if b_file == "empty":
        write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_B", [])
    result = evaluate(tmp_path, TWO_IMAGES, tmp_path / "p", return_curves=True)
    assert aps(result) == pytest.approx((0.5,) * 3, abs=1e-12)
    for precision, recall in result["curves"].values():
        assert recall.max() == 0.5
        assert (precision == 1.0).all()


def test_event_without_prediction_directory_counts_its_faces(tmp_path: Path) -> None:
    images = [
        *TWO_IMAGES,
        {"event": "5--Car_Accident", "name": "5_Car_1", "boxes": [[1, 1, 9, 9]], "counted": ALL_COUNTED},
    ]
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_A", [[0, 0, 30, 30, 0.9]])
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_B", [[0, 0, 30, 30, 0.8]])
    assert aps(evaluate(tmp_path, images, tmp_path / "p")) == pytest.approx((2 / 3,) * 3, abs=1e-12)


def test_empty_prediction_file_reads_as_no_boxes(tmp_path: Path) -> None:
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_A", [])
    preds = read_predictions(tmp_path / "p")
    assert preds["4--Dancing"]["4_Dancing_A"].shape == (0, 5)
    # Nothing predicted anywhere: AP 0, not NaN.
    result = evaluate(tmp_path, TWO_IMAGES, tmp_path / "p", return_curves=True)
    assert aps(result) == (0.0, 0.0, 0.0)
    for precision, recall in result["curves"].values():
        assert not np.isnan(precision).any() and not np.isnan(recall).any()


def test_zero_over_zero_precision_does_not_give_nan(tmp_path: Path) -> None:
    # The top box hits the ignored face: no proposal at all for t in (0.5, 1) (0/0).
    # Then t in (0, 0.5]: P 1 R 1; t = 0: P 1/2 R 1 -> AP 1.
    write_raw(
        tmp_path / "p",
        "2--Demonstration",
        "2_Demonstration_1",
        [[500, 500, 20, 20, 1.0], [*TP, 0.5], [*FP, 0.0]],
    )
    result = evaluate(tmp_path, IGNORE_CASE, tmp_path / "p", return_curves=True)
    assert aps(result) == (1.0, 1.0, 1.0)
    precision, recall = result["curves"]["easy"]
    assert np.isfinite(precision).all()
    assert precision[0] == 0.0 and recall[0] == 0.0  # the explicit 0/0 value
    assert precision[-2] == 1.0 and precision[-1] == 0.5


def test_iou_uses_plus_one_convention_and_inclusive_threshold(tmp_path: Path) -> None:
    # GT (0, 0, 2, 2) and prediction (1, 0, 2, 2): with +1 areas the IoU is 6 / 12 = 0.5
    # exactly (a match, since >= 0.5); without the +1 it would be 2 / 6.
    images = [{"event": "6--Funeral", "name": "6_Funeral_1", "boxes": [[0, 0, 2, 2]], "counted": ALL_COUNTED}]
    write_raw(tmp_path / "p", "6--Funeral", "6_Funeral_1", [[1, 0, 2, 2, 0.9]])
    gt_dir = write_gt(tmp_path / "gt", images)
    assert aps(evaluate_widerface(tmp_path / "p", gt_dir)) == (1.0, 1.0, 1.0)
    assert aps(evaluate_widerface(tmp_path / "p", gt_dir, iou_threshold=0.51)) == (0.0, 0.0, 0.0)


def test_predictions_for_unknown_images_are_not_scored(tmp_path: Path) -> None:
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_A", [[0, 0, 30, 30, 0.9]])
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_B", [[0, 0, 30, 30, 0.8]])
    reference = aps(evaluate(tmp_path, TWO_IMAGES, tmp_path / "p"))
    write_raw(tmp_path / "p", "4--Dancing", "4_Dancing_Z", [[0, 0, 30, 30, 0.85]])
    write_raw(tmp_path / "p", "99--Unknown", "99_Unknown_1", [[0, 0, 30, 30, 0.85]])
    assert aps(evaluate(tmp_path, TWO_IMAGES, tmp_path / "p")) == reference == (1.0, 1.0, 1.0)


def test_invalid_arguments(tmp_path: Path) -> None:
    gt_dir = write_gt(tmp_path / "gt", TWO_IMAGES)
    (tmp_path / "p").mkdir()
    with pytest.raises(ValueError):
        evaluate_widerface(tmp_path / "p", gt_dir, iou_threshold=0.0)
    with pytest.raises(ValueError):
        evaluate_widerface(tmp_path / "p", gt_dir, num_thresholds=0)
    with pytest.raises(FileNotFoundError):
        evaluate_widerface(tmp_path / "nope", gt_dir)


# ------------------------------------------------------------ reference check


def _reference(preds, gt_images, iou_thr: float, num_thr: int) -> dict[str, float]:
    """Loop-for-loop scorer written from the protocol steps (slow, small inputs only)."""
    lo, hi = 1.0, 0.0
    for event in preds.values():
        for boxes in event.values():
            for row in boxes:
                lo, hi = min(lo, row[4]), max(hi, row[4])
    result = {}
    for setting in SETTINGS:
        count_face, proposals, tps = 0, [0] * num_thr, [0] * num_thr
        for image in gt_images:
            counted = set(image.counted[setting].tolist())
            count_face += len(image.counted[setting])
            pred = preds.get(image.event, {}).get(image.name)
            if pred is None or len(pred) == 0 or len(image.boxes) == 0:
                continue
            scores = [1.0 if hi == lo else (row[4] - lo) / (hi - lo) for row in pred]
            state = [0] * len(image.boxes)  # 0 not recalled, 1 recalled, -1 ignored and hit
            is_proposal, recalled_so_far = [], []
            for row in pred:
                px1, py1, px2, py2 = row[0], row[1], row[0] + row[2], row[1] + row[3]
                ious = []
                for gx, gy, gw, gh in image.boxes.tolist():
                    gx2, gy2 = gx + gw, gy + gh
                    iw = min(px2, gx2) - max(px1, gx) + 1
                    ih = min(py2, gy2) - max(py1, gy) + 1
                    if iw > 0 and ih > 0:
                        union = (px2 - px1 + 1) * (py2 - py1 + 1) + (gx2 - gx + 1) * (gy2 - gy + 1) - iw * ih
                        ious.append(iw * ih / union)
                    else:
                        ious.append(0.0)
                best = max(range(len(ious)), key=lambda k: ious[k])  # first maximum
                proposal = True
                if ious[best] >= iou_thr:
                    if best not in counted:
                        state[best] = -1
                        proposal = False
                    elif state[best] == 0:
                        state[best] = 1
                is_proposal.append(proposal)
                recalled_so_far.append(sum(1 for s in state if s == 1))
            for k in range(num_thr):
                t = 1 - (k + 1) / num_thr
                passing = [i for i, s in enumerate(scores) if s >= t]
                if passing:
                    last = passing[-1]
                    proposals[k] += sum(is_proposal[: last + 1])
                    tps[k] += recalled_so_far[last]
        precision = [tp / p if p else 0.0 for tp, p in zip(tps, proposals, strict=True)]
        recall = [tp / count_face for tp in tps]
        mrec, mpre = [0.0, *recall, 1.0], [0.0, *precision, 0.0]
        for i in range(len(mpre) - 1, 0, -1):
            mpre[i - 1] = max(mpre[i - 1], mpre[i])
        result[setting] = sum(
            (mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i]
        )
    return result


def _random_case(rng: np.random.Generator, pred_dir: Path) -> list[dict]:
    images = []
    for index in range(12):
        event = f"{index % 3}--Event{index % 3}"
        n_gt = int(rng.integers(0, 6)) if index else 3
        xy = rng.integers(0, 40, size=(n_gt, 2))
        wh = rng.integers(0, 12, size=(n_gt, 2))
        boxes = np.hstack([xy, wh])
        if n_gt > 1 and rng.random() < 0.3:
            boxes[1] = boxes[0]  # identical GT faces (as in the real val set)
        counted = {
            s: sorted(
                rng.choice(
                    np.arange(1, n_gt + 1), size=int(rng.integers(0, n_gt + 1)), replace=False
                ).tolist()
            )
            for s in SETTINGS
        }
        images.append({"event": event, "name": f"img_{index}", "boxes": boxes.tolist(), "counted": counted})
        if rng.random() < 0.15:
            continue  # no prediction file
        rows = []
        for box in boxes.tolist():
            for _ in range(int(rng.integers(0, 3))):
                jitter = rng.integers(-2, 3, size=4)
                rows.append(
                    [
                        *(np.asarray(box) + jitter).tolist(),
                        float(rng.choice([0.1, 0.3, 0.35, 0.6, 0.9, 0.95])),
                    ]
                )
        for _ in range(int(rng.integers(0, 4))):
            rows.append(
                [
                    *rng.integers(0, 50, size=2).tolist(),
                    *rng.integers(0, 12, size=2).tolist(),
                    float(rng.uniform(0.05, 0.97)),
                ]
            )
        if rng.random() < 0.7:
            rows.sort(key=lambda r: -r[4])  # otherwise unsorted: "last passing box" still applies
        write_raw(pred_dir, event, f"img_{index}", rows)
    return images


@pytest.mark.parametrize("seed", range(6))
def test_matches_loop_reference_on_random_data(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = _random_case(rng, tmp_path / "p")
    (tmp_path / "p").mkdir(exist_ok=True)
    gt_dir = write_gt(tmp_path / "gt", images)
    preds = read_predictions(tmp_path / "p")
    gt = load_ground_truth(gt_dir)
    for iou_thr, num_thr in [(0.5, 1000), (0.3, 37)]:
        got = evaluate_widerface(tmp_path / "p", gt_dir, iou_threshold=iou_thr, num_thresholds=num_thr)
        want = _reference(preds, gt, iou_thr, num_thr)
        for setting in SETTINGS:
            assert got[setting] == pytest.approx(want[setting], abs=1e-12), (setting, iou_thr, num_thr)


# ------------------------------------------------------------ prediction files


def test_write_read_round_trip(tmp_path: Path) -> None:
    boxes = np.array(
        [
            [-3.7, -0.2, 10.9, 5.5],  # x=-3 y=0 w=10-(-3)=13 h=5
            [1.99, 2.01, 3.5, 4.999],  # x=1 y=2 w=2 h=2
            [100.0, 50.5, 150.2, 99.9],  # x=100 y=50 w=50 h=49
            [7.5, 7.5, 8.4, 8.6],  # x=7 y=7 w=1 h=1
        ],
        dtype=np.float32,
    )
    scores = np.array([0.25, 0.9, 0.5, 0.9], dtype=np.float32)  # tie 0.9 keeps input order
    path = tmp_path / "pred" / "0--Parade" / "0_Parade_x_1.txt"
    write_predictions(path, "0_Parade_x_1", boxes, scores)
    lines = path.read_text().splitlines()
    assert lines[:2] == ["0_Parade_x_1", "4"]
    assert lines[2:] == ["1 2 2 2 0.9", "7 7 1 1 0.9", "100 50 50 49 0.5", "-3 0 13 5 0.25"]
    got = read_predictions(tmp_path / "pred")["0--Parade"]["0_Parade_x_1"]
    expected = np.array(
        [[1, 2, 2, 2, 0.9], [7, 7, 1, 1, 0.9], [100, 50, 50, 49, 0.5], [-3, 0, 13, 5, 0.25]], dtype=np.float64
    )
    np.testing.assert_array_equal(got, expected)
    assert (np.diff(got[:, 4]) <= 0).all()


def test_write_predictions_prints_float32_scores(tmp_path: Path) -> None:
    scores = np.array([0.1, 1 / 3, 2e-5])  # float64 input, printed as float32
    boxes = np.zeros((3, 4))
    path = tmp_path / "e" / "x.txt"
    write_predictions(path, "x", boxes, scores)
    printed = [line.split()[4] for line in path.read_text().splitlines()[2:]]
    assert printed == ["0.33333334", "0.1", "2e-05"]  # descending, str() of the float32 values
    assert printed == [str(np.float32(s)) for s in sorted(scores, reverse=True)]


def test_write_predictions_validates_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "a.txt", "a", np.zeros((2, 5)), np.zeros(2))
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "a.txt", "a", np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "a.txt", "a", np.full((1, 4), np.nan), np.zeros(1))
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "a.txt", "a\nb", np.zeros((1, 4)), np.zeros(1))


def test_write_empty_prediction_file(tmp_path: Path) -> None:
    write_predictions(tmp_path / "e" / "x.txt", "x", np.zeros((0, 4)), np.zeros(0))
    assert (tmp_path / "e" / "x.txt").read_text() == "x\n0\n"
    assert read_predictions(tmp_path)["e"]["x"].shape == (0, 5)


def test_read_predictions_normalises_names(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "a.txt").write_text("some/dir/0_Parade_1.jpg\n1\n1 2 3 4 0.5\n")
    (tmp_path / "e" / "b.txt").write_text("img_jpg\n0\n")  # rstrip('.jpg') quirk: -> "img_"
    (tmp_path / "e" / "notes.md").write_text("not a prediction")
    preds = read_predictions(tmp_path)
    assert sorted(preds["e"]) == ["0_Parade_1", "img_"]


@pytest.mark.parametrize(
    "content",
    [
        "",
        "name_only\n",
        "name\nabc\n",
        "name\n2\n1 2 3 4 0.5\n",
        "name\n1\n1 2 3 0.5\n",
        "name\n1\n1 2 x 4 0.5\n",
        "name\n1\n1 2 3 4 nan\n",
    ],
)
def test_malformed_prediction_file_raises_naming_it(tmp_path: Path, content: str) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "broken_file.txt").write_text(content)
    with pytest.raises(ValueError, match="broken_file.txt"):
        read_predictions(tmp_path)


# ------------------------------------------------------------------ plotting


def test_plot_pr_curves_writes_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    gt_as_predictions(tmp_path / "pred", SMALL, np.linspace(0.9, 0.2, 7).tolist())
    result = evaluate(tmp_path, SMALL, tmp_path / "pred", return_curves=True)
    out = tmp_path / "plots" / "pr.png"
    plot_pr_curves(result["curves"], out, title="synthetic")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 1000


# ----------------------------------------------------------- real ground truth


def _expected_gt_as_prediction_ap(image: GroundTruthImage, setting: str) -> tuple[int, int, int]:
    """(count_face, proposals, tp) when every GT box of non-negative size is predicted once
    and all scores are equal.

    A copy of face k has IoU exactly 1 with k and with faces identical to it, and takes the
    first of those; identical faces after the first can never be recalled. A box of negative
    width or height has IoU 0 with everything (+1 convention), so it cannot be recalled.
    """
    boxes = [tuple(b) for b in image.boxes.tolist()]
    predicted = [k for k, b in enumerate(boxes) if b[2] >= 0 and b[3] >= 0]
    first = [boxes.index(b) for b in boxes]
    counted = set(image.counted[setting].tolist())
    proposals = sum(1 for k in predicted if first[k] in counted)
    tp = len({first[k] for k in predicted} & counted)
    return len(image.counted[setting]), proposals, tp


def test_real_ground_truth_structure(shared: Path) -> None:
    gt_dir = shared_file(shared, GT_REL)
    for name in ("wider_face_val.mat", "wider_easy_val.mat", "wider_medium_val.mat", "wider_hard_val.mat"):
        shared_file(shared, f"{GT_REL}/{name}")
    gt = load_ground_truth(gt_dir)
    assert len(gt) == 3226
    assert len({g.event for g in gt}) == 61
    assert [sum(len(g.counted[s]) for g in gt) for s in SETTINGS] == [7211, 13319, 31958]


def test_real_ground_truth_as_predictions(shared: Path, tmp_path: Path) -> None:
    """Every val face predicted with score 1.0: Easy = Medium = 1.0, Hard = 1 - 9.4e-5.

    Hard cannot reach 1.0 under the official protocol, because of two faces counted in Hard:
    - faces 65 and 104 of 21_Festival_Festival_21_604 are identical boxes; both copies match
      face 65 (first best IoU), so one copy is a false positive and face 104 is never recalled;
    - face 8 of 39_Ice_Skating_iceskiing_39_583 has width -2: its IoU with any box is 0, so it
      is never recalled (a copy of it would be a false positive in every setting, so the
      copies of negative-size boxes are not written).
    Hence recall 31956 / 31958 at precision 31956 / 31957.
    """
    gt_dir = shared_file(shared, GT_REL)
    start = time.perf_counter()
    gt = load_ground_truth(gt_dir)
    pred_dir = tmp_path / "pred"
    for image in gt:
        keep = (image.boxes[:, 2] >= 0) & (image.boxes[:, 3] >= 0)
        corners = image.boxes[keep].copy()
        corners[:, 2:] += corners[:, :2]
        write_predictions(
            pred_dir / image.event / f"{image.name}.txt", image.name, corners, np.ones(len(corners))
        )
    result = evaluate_widerface(pred_dir, gt_dir)
    elapsed = time.perf_counter() - start

    expected = {}
    for setting in SETTINGS:
        count, proposals, tp = (
            sum(v) for v in zip(*(_expected_gt_as_prediction_ap(g, setting) for g in gt), strict=True)
        )
        expected[setting] = (tp / count) * (tp / proposals)  # one PR point: AP = recall * precision
    assert expected["easy"] == expected["medium"] == 1.0
    assert expected["hard"] == pytest.approx((31956 / 31958) * (31956 / 31957), abs=1e-15)
    assert result["easy"] == 1.0
    assert result["medium"] == 1.0
    assert result["hard"] == pytest.approx(expected["hard"], abs=1e-12)
    assert elapsed < 30.0, f"real-GT scoring took {elapsed:.1f} s"


def test_image_subset_restricts_scoring(tmp_path: Path) -> None:
    """Only the named images are scored: their faces alone count, so a perfect subset gives AP 1."""
    gt = write_gt(
        tmp_path / "gt",
        [
            {"event": "0--A", "name": "a", "boxes": [[10, 10, 20, 20]], "counted": ALL_COUNTED},
            {"event": "0--A", "name": "b", "boxes": [[5, 5, 30, 30], [50, 50, 10, 10]], "counted": ALL_COUNTED},
        ],
    )
    pred = tmp_path / "pred"
    write_raw(pred, "0--A", "a", [[10, 10, 20, 20, 0.9]])
    full = evaluate_widerface(pred, gt)
    sub = evaluate_widerface(pred, gt, images=["a"])
    assert sub["easy"] == pytest.approx(1.0)
    assert full["easy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_widerface(pred, gt, images=["zzz"])
