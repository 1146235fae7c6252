"""Tests of ``featherface.train.data``: annotation readers/writers, image loading, dataset, collate."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from featherface.train.augment import EvalTransform, TrainTransform
from featherface.train.config import DataSource, TrainConfig
from featherface.train.data import (
    FaceDataset,
    FaceSample,
    detection_collate,
    image_files,
    load_image_bgr,
    merge_labels,
    read_jsonl,
    read_retinaface_labels,
    read_voc,
    read_widerface_bbx_gt,
    write_jsonl,
)
from tests.conftest import shared_file

WIDER_LABELS = "data/widerface/labels/wider_face_train_bbx_gt_available.txt"
WIDER_IMAGES = "data/widerface/train_part1/images"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ FaceSample


def test_face_sample_validates_and_freezes() -> None:
    sample = FaceSample("a.jpg", [[0, 0, 10, 10]], np.ones((1, 5, 2)), [False])
    assert sample.image_path == Path("a.jpg")
    assert sample.boxes.dtype == np.float32 and sample.landmarks.dtype == np.float32
    assert sample.has_landmarks.dtype == bool
    assert not sample.landmarks.any()  # absent landmarks are stored as zeros
    with pytest.raises(ValueError):
        sample.boxes[0, 0] = 5  # read-only
    with pytest.raises(AttributeError):
        sample.boxes = np.zeros((0, 4))  # type: ignore[misc]
    with pytest.raises(ValueError, match="boxes"):
        FaceSample(Path("a.jpg"), np.zeros((2, 5)), np.zeros((2, 5, 2)), np.zeros(2, bool))
    with pytest.raises(ValueError, match="landmarks"):
        FaceSample(Path("a.jpg"), np.zeros((2, 4)), np.zeros((2, 10)), np.zeros(2, bool))
    with pytest.raises(ValueError, match="has_landmarks"):
        FaceSample(Path("a.jpg"), np.zeros((2, 4)), np.zeros((2, 5, 2)), np.zeros(3, bool))


def test_face_sample_copies_its_inputs() -> None:
    boxes = np.array([[1, 2, 3, 4]], np.float32)
    sample = FaceSample(Path("a.jpg"), boxes, np.zeros((1, 5, 2), np.float32), np.zeros(1, bool))
    boxes[0, 0] = 99
    assert sample.boxes[0, 0] == 1
    assert boxes.flags.writeable


# ------------------------------------------------------------------------------------------ WIDER FACE


def test_widerface_real_train_labels(shared: Path) -> None:
    labels = shared_file(shared, WIDER_LABELS)
    root = shared_file(shared, WIDER_IMAGES)
    samples = read_widerface_bbx_gt(labels, root)
    assert len(samples) == 1589
    first = samples[0]
    assert first.image_path == root / "0--Parade/0_Parade_Parade_0_1014.jpg"
    assert first.num_faces == 2
    np.testing.assert_array_equal(first.boxes[0], [122, 380, 132, 392])  # "122 380 10 12 ..."
    np.testing.assert_array_equal(first.boxes[1], [246, 378, 258, 392])  # "246 378 12 14 ..."
    assert not first.has_landmarks.any() and not first.landmarks.any()
    # 45,211 face lines: 946 flagged invalid, 10 of zero size (counted with awk on the file)
    assert sum(s.num_faces for s in samples) == 44255
    assert sum(s.num_faces for s in read_widerface_bbx_gt(labels, root, keep_invalid=True)) == 45201
    for sample in samples:
        assert np.all(sample.boxes[:, 2:] > sample.boxes[:, :2])
    available = read_widerface_bbx_gt(labels, root, require_images=True)
    assert len(available) == 618
    assert all(s.image_path.is_file() for s in available)


def test_widerface_invalid_small_degenerate_and_empty(tmp_path: Path) -> None:
    labels = write(
        tmp_path / "gt.txt",
        "a/one.jpg\n"
        "4\n"
        "10 20 30 40 0 0 0 0 0 0 \n"  # valid
        "50 60 8 9 2 0 0 1 0 0 \n"  # flagged invalid
        "70 80 0 12 0 0 0 0 0 0 \n"  # zero width
        "90 95 3 30 0 0 0 0 0 0 \n"  # narrow
        "b/empty.jpg\n"
        "0\n"
        "0 0 0 0 0 0 0 0 0 0\n"  # the dummy line of a 0-face image
        "c/last.jpg\n"
        "1\n"
        "1 2 3 4 0 0 0 0 0 0\n"
        "d/invalid_only.jpg\n"
        "1\n"
        "5 5 10 10 0 0 0 1 0 0\n",
    )
    samples = read_widerface_bbx_gt(labels, tmp_path)
    assert [s.image_path for s in samples] == [
        tmp_path / "a/one.jpg",
        tmp_path / "b/empty.jpg",
        tmp_path / "c/last.jpg",
        tmp_path / "d/invalid_only.jpg",
    ]
    np.testing.assert_array_equal(samples[0].boxes, [[10, 20, 40, 60], [90, 95, 93, 125]])
    assert samples[1].num_faces == 0 and samples[1].boxes.shape == (0, 4)
    assert samples[1].landmarks.shape == (0, 5, 2) and samples[1].has_landmarks.shape == (0,)
    np.testing.assert_array_equal(samples[2].boxes, [[1, 2, 4, 6]])
    assert samples[3].num_faces == 0  # kept as a negative

    kept = read_widerface_bbx_gt(labels, tmp_path, keep_invalid=True)
    np.testing.assert_array_equal(kept[0].boxes, [[10, 20, 40, 60], [50, 60, 58, 69], [90, 95, 93, 125]])
    assert kept[3].num_faces == 1

    filtered = read_widerface_bbx_gt(labels, tmp_path, min_size=5)
    np.testing.assert_array_equal(filtered[0].boxes, [[10, 20, 40, 60]])
    at_limit = read_widerface_bbx_gt(labels, tmp_path, min_size=3)  # only *narrower* than min_size is dropped
    np.testing.assert_array_equal(at_limit[0].boxes, [[10, 20, 40, 60], [90, 95, 93, 125]])

    (tmp_path / "c").mkdir()
    cv2.imwrite(str(tmp_path / "c/last.jpg"), np.zeros((8, 8, 3), np.uint8))
    present = read_widerface_bbx_gt(labels, tmp_path, require_images=True)
    assert [s.image_path for s in present] == [tmp_path / "c/last.jpg"]


def test_widerface_zero_face_image_without_dummy_line(tmp_path: Path) -> None:
    labels = write(tmp_path / "gt.txt", "a.jpg\n0\nb.jpg\n1\n1 1 2 2 0 0 0 0 0 0\n")
    samples = read_widerface_bbx_gt(labels, tmp_path)
    assert [s.num_faces for s in samples] == [0, 1]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("a.jpg\ntwo\n1 2 3 4 0 0 0 0 0 0\n", 2, "face count"),
        ("a.jpg\n-1\n", 2, "negative"),
        ("a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n", 4, "declares 2 faces"),
        ("a.jpg\n1\n1 2 3 4\n", 3, "10 numbers"),
        ("a.jpg\n1\n1 2 3 4 0 0 0 0 0 x\n", 3, "10 numbers"),
        ("a.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n5 6 7 8 0 0 0 0 0 0\n", 4, "image path"),
        ("a.jpg\n", 2, "face count"),
    ],
)
def test_widerface_malformed_files_name_the_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    labels = write(tmp_path / "gt.txt", text)
    with pytest.raises(ValueError, match=rf"line {line}\b.*{what}"):
        read_widerface_bbx_gt(labels, tmp_path)


# ------------------------------------------------------------------------------------------ RetinaFace


def test_retinaface_labels_with_and_without_landmarks(tmp_path: Path) -> None:
    labels = write(
        tmp_path / "label.txt",
        "# 0--Parade/a.jpg\n"
        "449 330 122 149 488.906 373.643 0.0 542.089 376.442 0.0 515.031 412.83 0.0 485.174 425.893 0.0 "
        "538.357 431.491 0.0 0.82\n"
        "361 98 263 339 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0\n"
        "# 1--Handshaking/b.jpg\n"
        "# 2--Demonstration/c.jpg 1024 768\n"
        "10 20 5 6\n"
        "7 7 0 5\n",
    )
    samples = read_retinaface_labels(labels, tmp_path)
    assert [s.image_path for s in samples] == [
        tmp_path / "0--Parade/a.jpg",
        tmp_path / "1--Handshaking/b.jpg",
        tmp_path / "2--Demonstration/c.jpg",
    ]
    first = samples[0]
    np.testing.assert_allclose(first.boxes, [[449, 330, 571, 479], [361, 98, 624, 437]])
    np.testing.assert_array_equal(first.has_landmarks, [True, False])
    np.testing.assert_allclose(
        first.landmarks[0],
        [[488.906, 373.643], [542.089, 376.442], [515.031, 412.83], [485.174, 425.893], [538.357, 431.491]],
        rtol=1e-6,
    )
    assert not first.landmarks[1].any()
    assert samples[1].num_faces == 0
    np.testing.assert_array_equal(samples[2].boxes, [[10, 20, 15, 26]])  # the 0-width face is dropped
    assert not samples[2].has_landmarks.any()


@pytest.mark.parametrize(
    ("text", "line"),
    [("1 2 3 4\n", 1), ("# a.jpg\n1 2 3 4 5 6 7\n", 2), ("# a.jpg\n1 2 three 4\n", 2), ("# a.jpg\n#\n", 2)],
)
def test_retinaface_malformed_files_name_the_line(tmp_path: Path, text: str, line: int) -> None:
    labels = write(tmp_path / "label.txt", text)
    with pytest.raises(ValueError, match=rf"line {line}\b"):
        read_retinaface_labels(labels, tmp_path)


# ---------------------------------------------------------------------------------------- JSON lines


def test_jsonl_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0, 500, (3, 5, 2)).astype(np.float32)
    samples = [
        FaceSample(
            tmp_path / "imgs/0--Parade/a.jpg",
            np.array([[1.5, 2.25, 30.125, 40.0], [100, 100, 150.3, 170.7], [5, 6, 7, 8]], np.float32),
            landmarks,
            np.array([True, False, True]),
        ),
        FaceSample.without_landmarks(tmp_path / "imgs/b.jpg", np.zeros((0, 4))),
    ]
    path = tmp_path / "labels.jsonl"
    write_jsonl(samples, path, tmp_path / "imgs")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record["image"] == "0--Parade/a.jpg"
    assert record["faces"][1]["landmarks"] is None and len(record["faces"][0]["landmarks"]) == 5
    assert record["faces"][0]["box"] == [1.5, 2.25, 30.125, 40.0]
    assert json.loads(lines[1]) == {"image": "b.jpg", "faces": []}

    back = read_jsonl(path, tmp_path / "imgs")
    assert len(back) == 2
    for a, b in zip(samples, back):  # noqa: B905 (lengths asserted above)
        assert a.image_path == b.image_path
        np.testing.assert_array_equal(a.boxes, b.boxes)  # bit-exact float32
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        np.testing.assert_array_equal(a.has_landmarks, b.has_landmarks)


def test_jsonl_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not under"):
        write_jsonl(
            [FaceSample.without_landmarks("/elsewhere/a.jpg", np.zeros((0, 4)))], tmp_path / "x", tmp_path
        )
    good = '{"image": "a.jpg", "faces": []}'
    cases = [
        ("not json", 1),
        (good + '\n{"faces": []}', 2),
        (good + '\n\n{"image": "b.jpg", "faces": [{"box": [1, 2, 3]}]}', 3),
        ('{"image": "b.jpg", "faces": [{"box": [5, 2, 3, 4]}]}', 1),
        ('{"image": "b.jpg", "faces": [{"box": [1, 2, 3, 4], "landmarks": [[1, 2]]}]}', 1),
    ]
    for text, line in cases:
        path = write(tmp_path / "bad.jsonl", text + "\n")
        with pytest.raises(ValueError, match=rf"line {line}\b"):
            read_jsonl(path, tmp_path)


# -------------------------------------------------------------------------------------------- images


def test_load_image_bgr(tmp_path: Path) -> None:
    colour = np.zeros((5, 7, 3), np.uint8)
    colour[:, :, 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    cv2.imwrite(str(tmp_path / "g.png"), np.full((4, 6), 77, np.uint8))
    loaded = load_image_bgr(tmp_path / "c.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (5, 7, 3)
    np.testing.assert_array_equal(loaded, colour)
    grey = load_image_bgr(str(tmp_path / "g.png"))
    assert grey.shape == (4, 6, 3) and np.all(grey == 77)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image_bgr(tmp_path / "missing.jpg")
    write(tmp_path / "broken.jpg", "not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image_bgr(tmp_path / "broken.jpg")


# ------------------------------------------------------------------------------------- dataset, collate


def check_dataset_determinism(dataset: FaceDataset, size: int) -> None:
    for index in range(len(dataset)):
        image, targets = dataset[index]
        assert image.dtype == torch.float32 and image.shape == (3, size, size)
        assert targets.dtype == torch.float32 and targets.ndim == 2 and targets.shape[1] == 15
        again_image, again_targets = dataset[index]
        assert torch.equal(image, again_image) and torch.equal(targets, again_targets)
    first = dataset[0]
    dataset.set_epoch(1)
    other_epoch = dataset[0]
    dataset.set_epoch(0)
    assert torch.equal(dataset[0][0], first[0])
    assert not torch.equal(other_epoch[0], first[0])
    other_seed = FaceDataset(dataset.samples, dataset.transform, seed=dataset.seed + 1)[0]
    assert not torch.equal(other_seed[0], first[0])
    same_seed = FaceDataset(dataset.samples, dataset.transform, seed=dataset.seed)[0]
    assert torch.equal(same_seed[0], first[0]) and torch.equal(same_seed[1], first[1])


def test_face_dataset_on_synthetic_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = []
    for k, (h, w) in enumerate([(120, 160), (90, 90), (200, 100)]):
        cv2.imwrite(str(tmp_path / f"{k}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        samples.append(
            FaceSample.without_landmarks(tmp_path / f"{k}.png", [[10, 10, 40, 50], [50, 20, 80, 60]])
        )
    dataset = FaceDataset(samples, TrainTransform(image_size=96), seed=3)
    assert len(dataset) == 3
    check_dataset_determinism(dataset, 96)
    # the rng is np.random.default_rng((seed, epoch, index)): the dataset item is reproducible by hand
    dataset.set_epoch(2)
    image, targets = dataset[1]
    expected = TrainTransform(image_size=96)(
        load_image_bgr(samples[1].image_path),
        samples[1].boxes,
        samples[1].landmarks,
        samples[1].has_landmarks,
        np.random.default_rng((3, 2, 1)),
    )
    np.testing.assert_array_equal(image.numpy(), expected[0])
    np.testing.assert_array_equal(targets.numpy(), expected[1])
    assert torch.equal(dataset[-2][0], image)
    with pytest.raises(IndexError):
        dataset[3]


def test_face_dataset_on_real_images(shared: Path) -> None:
    samples = read_widerface_bbx_gt(
        shared_file(shared, WIDER_LABELS), shared_file(shared, WIDER_IMAGES), require_images=True
    )[:3]
    assert len(samples) == 3
    dataset = FaceDataset(samples, TrainTransform(image_size=320), seed=0)
    check_dataset_determinism(dataset, 320)
    for index in range(3):
        _, targets = dataset[index]
        assert len(targets) >= 1  # every one of these has faces that a crop or the padding keeps
        assert torch.all(targets[:, 14] == -1)  # WIDER bbx_gt has no landmarks
    loader = DataLoader(dataset, batch_size=3, shuffle=False, collate_fn=detection_collate)
    images, targets_list = next(iter(loader))
    assert images.shape == (3, 3, 320, 320)
    assert len(targets_list) == 3 and all(t.shape[1] == 15 for t in targets_list)
    evaluation = FaceDataset(samples, EvalTransform(image_size=320))
    _, eval_targets = evaluation[0]
    assert len(eval_targets) == samples[0].num_faces


def test_detection_collate() -> None:
    batch = [
        (torch.zeros(3, 8, 8), torch.ones(2, 15)),
        (torch.ones(3, 8, 8), torch.zeros(0, 15)),
    ]
    images, targets = detection_collate(batch)
    assert images.shape == (2, 3, 8, 8) and torch.equal(images[1], torch.ones(3, 8, 8))
    assert [t.shape for t in targets] == [(2, 15), (0, 15)]
    with pytest.raises(ValueError):
        detection_collate([])


# ------------------------------------------------------------------------------------- Pascal VOC


def test_image_files_finds_images_at_any_depth_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "dir.jpg").mkdir()  # a folder with an image ending is not an image
    for rel in ("b/deep/z.PNG", "a.jpg", "b/x.webp", "notes.txt", "b/y.JPEG"):
        (tmp_path / rel).write_bytes(b"")
    assert image_files(tmp_path) == [tmp_path / "a.jpg", tmp_path / "b" / "deep" / "z.PNG",
                                     tmp_path / "b" / "x.webp", tmp_path / "b" / "y.JPEG"]


def _voc(path: Path, filename: str, objects: list[tuple[str, list[int], int]], size: tuple[int, int] = (100, 80)) -> None:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, difficult in objects
    )
    path.write_text(f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
                    f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>", encoding="utf-8")


def test_read_voc_faces_ignore_clipping_and_image_lookup(tmp_path: Path) -> None:
    ann, images = tmp_path / "annotations", tmp_path / "photos"
    (images / "JPEGImages").mkdir(parents=True)
    ann.mkdir()
    cv2.imwrite(str(images / "JPEGImages" / "a.jpg"), np.zeros((80, 100, 3), np.uint8))
    cv2.imwrite(str(images / "JPEGImages" / "b.png"), np.zeros((80, 100, 3), np.uint8))
    _voc(ann / "a.xml", "a.jpg", [("with_mask", [10, 20, 30, 50], 0), ("without_mask", [60, 5, 140, 40], 0),
                                  ("with_mask", [1, 1, 5, 5], 1), ("face", [7, 7, 7, 9], 0)])
    _voc(ann / "b.xml", "C:\\labelling\\b.jpg", [])  # another ending, a Windows path: still found
    _voc(ann / "c.xml", "missing.jpg", [("face", [1, 1, 9, 9], 0)])  # no such image: skipped
    a, b = read_voc(ann, images)
    assert a.image_path == images / "JPEGImages" / "a.jpg" and b.image_path == images / "JPEGImages" / "b.png"
    np.testing.assert_array_equal(a.boxes, [[10, 20, 30, 50], [60, 5, 100, 40]])  # clipped to <size>; empty one dropped
    assert not a.has_landmarks.any()
    np.testing.assert_array_equal(a.ignore, [[1, 1, 5, 5]])  # <difficult>1: neither face nor background
    assert b.num_faces == 0
    [only] = read_voc(ann, images, classes=["without_mask"])[:1]
    np.testing.assert_array_equal(only.boxes, [[60, 5, 100, 40]])
    (ann / "d.xml").write_text("<annotation><filename>a.jpg</filename><object><bndbox><xmin>1</xmin></bndbox>"
                               "</object></annotation>", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.xml: a <bndbox> without four numbers"):
        read_voc(ann, images)
    (ann / "d.xml").write_text("<annotation>", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.xml"):
        read_voc(ann, images)
    with pytest.raises(ValueError, match="VOC annotations folder not found"):
        read_voc(tmp_path / "nope", images)


def test_merge_labels_keeps_the_secondary_faces_and_adds_the_primary_ones_it_lacks() -> None:
    lm = np.arange(10, dtype=np.float32).reshape(5, 2)
    human = [FaceSample.without_landmarks("x.jpg", [[0, 0, 10, 10], [50, 50, 60, 60]]),
             FaceSample.without_landmarks("only_human.jpg", [[1, 1, 2, 2]])]
    teacher = [FaceSample(Path("x.jpg"), np.array([[1, 0, 11, 10]], np.float32), lm[None], np.array([True]),
                          ignore=np.array([[49, 49, 61, 61], [80, 80, 90, 90]], np.float32)),
               FaceSample.without_landmarks("only_teacher.jpg", [[3, 3, 4, 4]])]
    x, only_human = merge_labels(human, teacher)
    # the teacher's face (with landmarks), then the human face it lacks; the human box the teacher has is not doubled
    np.testing.assert_array_equal(x.boxes, [[1, 0, 11, 10], [50, 50, 60, 60]])
    np.testing.assert_array_equal(x.has_landmarks, [True, False])
    np.testing.assert_array_equal(x.landmarks[0], lm)
    # the teacher's unsure region over the added human face is dropped, the other one kept
    np.testing.assert_array_equal(x.ignore, [[80, 80, 90, 90]])
    assert only_human is human[1]  # images only in the secondary set are left out
    assert human[0].num_faces == 2 and teacher[0].num_faces == 1  # inputs untouched


def test_data_source_voc_with_merged_jsonl(tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((80, 100, 3), np.uint8))
    _voc(ann / "a.xml", "a.jpg", [("with_mask", [10, 20, 30, 50], 0)])
    teacher = tmp_path / "t.jsonl"
    teacher.write_text(json.dumps({"image": "a.jpg", "faces": [{"box": [60, 5, 90, 40], "landmarks": None}]}) + "\n")
    [s] = DataSource(format="voc", labels=str(ann), images=str(tmp_path), merge_jsonl=str(teacher)).load()
    np.testing.assert_array_equal(s.boxes, [[60, 5, 90, 40], [10, 20, 30, 50]])
    cfg = TrainConfig.from_dict({"model": "v2_ultra", "train_data": [
        {"format": "voc", "labels": "ann", "images": ".", "merge_jsonl": "t.jsonl"}]}, base_dir=tmp_path)
    assert cfg.train_data[0].merge_jsonl == str(teacher.resolve())


def test_label_agreement_script_counts_faces_both_sets_hold(tmp_path: Path) -> None:
    """benchmarks/label_agreement.py on a hand-made photo: 2 annotated faces, 2 teacher faces, 1 shared."""
    import subprocess
    import sys

    ann = tmp_path / "ann"
    ann.mkdir()
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((80, 100, 3), np.uint8))
    _voc(ann / "a.xml", "a.jpg", [("with_mask", [10, 20, 30, 50], 0), ("with_mask", [60, 60, 69, 69], 0)])
    teacher = tmp_path / "t.jsonl"
    teacher.write_text(json.dumps({"image": "a.jpg", "faces": [{"box": [11, 20, 31, 50], "landmarks": None},
                                                                {"box": [70, 5, 90, 30], "landmarks": None}]}))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "label_agreement.py"
    out = subprocess.run([sys.executable, str(script), "--voc", str(ann), "--images", str(tmp_path), "--jsonl",
                          str(teacher)], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"images": 1, "annotated_faces": 2, "annotated_found_by_teacher": 1, "teacher_faces": 2,
                               "teacher_faces_annotated": 1, "median_px_of_annotated_faces_teacher_lacks": 9.0}
