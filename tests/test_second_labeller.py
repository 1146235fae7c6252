"""YuNet as a second labeller (featherface.train.second_labeller, ``featherface second-label``)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from featherface.train.second_labeller import (
    SecondLabelPolicy,
    create_yunet,
    merge_labels,
    relabel,
    yunet_faces,
)
from tests.conftest import shared_file
from tests.test_packaged_weights import ASTRONAUT, ASTRONAUT_FACE, _iou

YUNET = "data/peers/face_detection_yunet_2026may.onnx"


def _lms(box: list[float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[x1 + 0.3 * (x2 - x1), y1 + 0.4 * (y2 - y1)], [x1 + 0.7 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
                     [(x1 + x2) / 2, (y1 + y2) / 2], [x1 + 0.35 * (x2 - x1), y1 + 0.8 * (y2 - y1)],
                     [x1 + 0.65 * (x2 - x1), y1 + 0.8 * (y2 - y1)]], np.float32)


def test_merge_promotes_agreed_ignore_regions_and_ignores_yunet_only_faces() -> None:
    teacher_face = [100.0, 100.0, 140.0, 150.0]
    record = {"image": "a.jpg", "faces": [{"box": teacher_face, "landmarks": _lms(teacher_face).tolist()}],
              "scores": [0.93],
              "ignore": [[10.0, 10.0, 20.0, 22.0], [50.0, 10.0, 60.0, 22.0], [200.0, 200.0, 260.0, 280.0]]}
    before = copy.deepcopy(record)
    yunet = [([10.5, 10.0, 20.5, 22.5], 0.91),   # agrees with ignore region 0: promoted
             ([50.0, 10.0, 60.0, 22.0], 0.55),   # on ignore region 1 but unsure: region stays ignore
             ([300.0, 40.0, 330.0, 80.0], 0.95),  # nobody's face: becomes an ignore region
             ([101.0, 100.0, 141.0, 150.0], 0.97)]  # the teacher's face: unchanged
    boxes = np.array([b for b, _ in yunet], np.float32)
    lms = np.stack([_lms(b) for b, _ in yunet])
    scores = np.array([s for _, s in yunet], np.float32)
    out, counts = merge_labels(record, boxes, lms, scores, SecondLabelPolicy(min_score=0.8))
    assert record == before  # the caller's record is not modified
    assert counts == {"promoted": 1, "added_ignore": 1}
    assert out["faces"][0] == record["faces"][0]
    assert out["faces"][1]["box"] == pytest.approx([10.5, 10.0, 20.5, 22.5])
    assert np.allclose(out["faces"][1]["landmarks"], lms[0])
    assert out["scores"] == [0.93, pytest.approx(0.91, abs=1e-4)]
    assert out["second_labeller"] == [1]
    assert out["ignore"] == [[50.0, 10.0, 60.0, 22.0], [200.0, 200.0, 260.0, 280.0], [300.0, 40.0, 330.0, 80.0]]
    # nothing confident from YuNet: the record comes back as it was (plus an explicit scores list)
    same, counts = merge_labels(record, boxes, lms, scores * 0.5, SecondLabelPolicy(min_score=0.8))
    assert counts == {"promoted": 0, "added_ignore": 0}
    assert same["faces"] == record["faces"] and same["ignore"] == record["ignore"] and "second_labeller" not in same


def test_policy_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="min_score"):
        SecondLabelPolicy(min_score=0.0)
    with pytest.raises(ValueError, match="max_side"):
        SecondLabelPolicy(max_side=0)


def test_missing_yunet_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no YuNet model file"):
        create_yunet(tmp_path / "missing.onnx")


def test_yunet_faces_are_corners_and_landmarks_in_original_pixels(shared: Path) -> None:
    detector = create_yunet(shared_file(shared, YUNET))
    image = cv2.imread(str(ASTRONAUT))
    before = image.copy()
    boxes, lms, scores = yunet_faces(detector, image)
    assert np.array_equal(image, before)
    assert boxes.shape == (len(scores), 4) and lms.shape == (len(scores), 5, 2) and boxes.dtype == np.float32
    best = int(np.argmax(scores))
    assert scores[best] > 0.8 and _iou(tuple(boxes[best]), ASTRONAUT_FACE) > 0.5, boxes[best]
    eye_a, eye_b, nose, mouth_a, mouth_b = lms[best]
    # this project's landmark order: the eye and mouth corner with the smaller x first, nose in between
    assert eye_a[0] < nose[0] < eye_b[0] and mouth_a[0] < mouth_b[0] and eye_a[1] < nose[1] < mouth_a[1]
    # downscaled input (longer side capped): the same face, mapped back to original pixels
    big = cv2.resize(image, None, fx=2, fy=2)
    big_boxes, big_lms, big_scores = yunet_faces(detector, big, max_side=512)
    j = int(np.argmax(big_scores))
    assert _iou(tuple(big_boxes[j] / 2), tuple(boxes[best])) > 0.8
    assert np.abs(big_lms[j] / 2 - lms[best]).max() < 4
    blank_boxes, blank_lms, blank_scores = yunet_faces(detector, np.zeros((240, 320, 3), np.uint8))
    assert len(blank_boxes) == len(blank_lms) == len(blank_scores)
    assert np.all(blank_scores < SecondLabelPolicy().min_score)  # nothing YuNet would vouch for


def test_relabel_end_to_end_resumable(shared: Path, tmp_path: Path) -> None:
    from featherface import cli

    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy(ASTRONAUT, root / "astronaut.png")
    (root / "broken.jpg").write_bytes(b"not an image")
    labels = tmp_path / "teacher.jsonl"
    records = [{"image": "astronaut.png", "faces": [], "scores": [], "ignore": [list(ASTRONAUT_FACE)]},
               {"image": "broken.jpg", "faces": [], "scores": [], "ignore": []}]
    labels.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "merged.jsonl"
    yunet = str(shared_file(shared, YUNET))
    assert cli.main(["second-label", "--yunet", yunet, "--labels", str(labels), "--images", str(root),
                     "--out", str(out)]) == 0
    merged = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(merged) == 2 and merged[1] == records[1]  # unreadable: kept unchanged
    assert merged[0]["ignore"] == [] and merged[0]["second_labeller"] == [0]
    assert _iou(tuple(merged[0]["faces"][0]["box"]), ASTRONAUT_FACE) > 0.5
    from featherface.train.data import read_jsonl

    assert read_jsonl(out, root)[0].num_faces == 1  # the trainer reads the merged file
    again = relabel(labels, root, create_yunet(yunet), out, progress=False)
    assert again["skipped_done"] == 2 and again["images"] == 0
    with pytest.raises(ValueError, match="overwrite its input"):
        relabel(labels, root, create_yunet(yunet), labels, progress=False)
    val = tmp_path / "WIDER_val" / "images" / "0--Parade"
    val.mkdir(parents=True)
    shutil.copy(ASTRONAUT, val / "a.jpg")
    (tmp_path / "val.jsonl").write_text(json.dumps({"image": "0--Parade/a.jpg", "faces": []}) + "\n")
    with pytest.raises(ValueError, match="val"):
        relabel(tmp_path / "val.jsonl", val.parent, create_yunet(yunet), tmp_path / "v_out.jsonl", progress=False)
