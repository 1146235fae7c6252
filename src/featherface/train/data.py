"""Face annotations, their readers and writers, and the training :class:`FaceDataset`.

Conventions
-----------
* Coordinates are continuous pixel coordinates of the original image: pixel ``(row i, column j)`` covers
  ``[j, j+1) x [i, i+1)``. Boxes are ``(x1, y1, x2, y2)`` with ``x2 = x + w`` (no "+1" convention).
* Landmarks are 5 ``(x, y)`` points in the order left eye, right eye, nose, left mouth corner, right mouth
  corner, "left" meaning the smaller ``x`` in the image for a frontal face (the RetinaFace convention).
  Faces without landmark annotations carry zeros and ``has_landmarks = False``.
* Every reader returns boxes with positive width and height: zero- or negative-size boxes are dropped.

Formats read
------------
* :func:`read_widerface_bbx_gt`: the official WIDER FACE ``wider_face_*_bbx_gt.txt``.
* :func:`read_retinaface_labels`: the RetinaFace ``label.txt`` (boxes + 5 landmarks).
* :func:`read_voc`: Pascal VOC XML files (labelImg and most face-mask collections), one per image.
* :func:`read_jsonl` / :func:`write_jsonl`: featherface's own JSON-lines format, one image per line::

      {"image": "0--Parade/x.jpg", "faces": [{"box": [x1, y1, x2, y2], "landmarks": [[x, y], ...] | null}]}

  ``image`` is relative to ``images_root`` (``/`` separators); ``box`` is in pixels, ``x2 > x1``,
  ``y2 > y1``; ``landmarks`` is 5 ``[x, y]`` pairs in the order above, or ``null`` when absent. An
  optional ``"ignore": [[x1, y1, x2, y2], ...]`` lists regions that are neither face nor background
  (:attr:`FaceSample.ignore`); other keys (e.g. the teacher's ``"scores"``) are ignored.

Targets produced by :class:`FaceDataset` (through its transform) are ``float32 [M, 15]`` rows:
columns 0-3 box ``x1, y1, x2, y2`` normalised to ``[0, 1]`` by the final image width/height; columns 4-13 the
landmarks ``x0, y0, ..., x4, y4`` normalised the same way (zeros when absent); column 14 the label, ``1.0``
for a face with landmarks and ``-1.0`` for a face without. See :mod:`featherface.train.augment`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch.utils.data import Dataset

from featherface._ops.boxes import box_iou
from featherface.train.augment import TARGET_DIM, build_targets

__all__ = [
    "IMAGE_SUFFIXES",
    "TARGET_DIM",
    "FaceDataset",
    "FaceSample",
    "Transform",
    "build_targets",
    "detection_collate",
    "image_files",
    "load_image_bgr",
    "merge_labels",
    "read_jsonl",
    "read_retinaface_labels",
    "read_voc",
    "read_widerface_bbx_gt",
    "write_jsonl",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]  # noqa: UP007 (a runtime alias: Python 3.9 has no `str | os.PathLike`)

#: ``transform(image_bgr_uint8, boxes, landmarks, has_landmarks, rng) -> (image [3,S,S], targets [M,15])``.
Transform = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]
]

# WIDER FACE bbx_gt columns: x y w h blur expression illumination invalid occlusion pose
_WIDER_COLUMNS = 10
_WIDER_INVALID = 7


# --------------------------------------------------------------------------------------------- sample


@dataclass(frozen=True, eq=False)
class FaceSample:
    """The annotations of one image.

    Attributes:
        image_path: the image file.
        boxes: ``float32 [N, 4]`` ``(x1, y1, x2, y2)`` in pixels.
        landmarks: ``float32 [N, 5, 2]`` ``(x, y)`` in pixels, left eye, right eye, nose, left mouth corner,
            right mouth corner; zeros for faces without landmarks.
        has_landmarks: ``bool [N]``.
        ignore: ``float32 [K, 4]`` ``(x1, y1, x2, y2)`` pixel regions that are neither face nor
            background (faces a pseudo-labelling teacher was unsure of); empty by default.

    The arrays are stored as read-only copies (converted to float32/bool); landmark rows of faces with
    ``has_landmarks = False`` are zeroed. Wrong shapes raise :class:`ValueError` naming the field.
    Equality is identity (arrays do not compare as booleans).
    """

    image_path: Path
    boxes: np.ndarray
    landmarks: np.ndarray
    has_landmarks: np.ndarray
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_path", Path(self.image_path))
        boxes = _as_array(self.boxes, np.float32, "boxes")
        landmarks = _as_array(self.landmarks, np.float32, "landmarks")
        has_landmarks = _as_array(self.has_landmarks, np.bool_, "has_landmarks")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape [N, 4], got {boxes.shape}")
        n = boxes.shape[0]
        if landmarks.shape != (n, 5, 2):
            raise ValueError(f"landmarks must have shape [N, 5, 2] with N = {n}, got {landmarks.shape}")
        if has_landmarks.shape != (n,):
            raise ValueError(f"has_landmarks must have shape [N] with N = {n}, got {has_landmarks.shape}")
        landmarks[~has_landmarks] = 0.0
        ignore = _as_array(self.ignore, np.float32, "ignore")
        if ignore.size == 0:
            ignore = ignore.reshape(0, 4)
        if ignore.ndim != 2 or ignore.shape[1] != 4:
            raise ValueError(f"ignore must have shape [K, 4], got {ignore.shape}")
        for name, value in (("boxes", boxes), ("landmarks", landmarks), ("has_landmarks", has_landmarks),
                            ("ignore", ignore)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def num_faces(self) -> int:
        """``N``."""
        return int(self.boxes.shape[0])

    @classmethod
    def without_landmarks(cls, image_path: PathLike, boxes: np.ndarray) -> FaceSample:
        """A sample whose faces have no landmarks (``boxes`` ``[N, 4]`` x1y1x2y2 pixels)."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        n = len(boxes)
        return cls(Path(image_path), boxes, np.zeros((n, 5, 2), np.float32), np.zeros(n, bool))


def _as_array(value: object, dtype: type, name: str) -> np.ndarray:
    try:
        return np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} cannot be converted to a {np.dtype(dtype).name} array: {exc}") from exc


def _make_sample(
    image_path: Path, boxes: list[list[float]], landmarks: list[list[float]], has: list[bool]
) -> FaceSample:
    n = len(boxes)
    return FaceSample(
        image_path,
        np.asarray(boxes, np.float32).reshape(n, 4),
        np.asarray(landmarks, np.float32).reshape(n, 5, 2),
        np.asarray(has, bool).reshape(n),
    )


def _numbers(text: str) -> list[float] | None:
    """The whitespace-separated floats on a line, or ``None`` if any token is not a number."""
    try:
        return [float(token) for token in text.split()]
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------ WIDER FACE


def read_widerface_bbx_gt(
    txt_path: PathLike,
    images_root: PathLike,
    *,
    keep_invalid: bool = False,
    min_size: float = 0.0,
    require_images: bool = False,
) -> list[FaceSample]:
    """Read the official WIDER FACE ``wider_face_{train,val}_bbx_gt.txt``.

    Format: an image path line (relative to ``images_root``), a face-count line, then one line per face
    ``x y w h blur expression illumination invalid occlusion pose`` (10 numbers). An image with 0 faces has
    a count of 0 followed by one dummy line of zeros (consumed; tolerated if missing).

    Faces are converted to ``(x1, y1, x2, y2) = (x, y, x + w, y + h)`` and filtered:

    * faces flagged invalid (8th column ``== 1``) are dropped unless ``keep_invalid`` -- that is how the
      WIDER FACE protocol treats them for training (the evaluation does not use this flag: it has its own
      easy/medium/hard ``.mat`` lists);
    * boxes with zero or negative width or height are always dropped;
    * boxes narrower or shorter than ``min_size`` pixels are dropped.

    Images left with no face are **kept** (with ``N = 0``): they are useful negatives for training. No
    landmarks exist in this format: ``has_landmarks`` is all ``False``.

    Args:
        require_images: drop entries whose image file does not exist under ``images_root`` (the number
            dropped is logged at INFO level).

    Raises:
        ValueError: malformed file; the message gives the 1-based line number.
    """
    txt_path = Path(txt_path)
    images_root = Path(images_root)
    with txt_path.open(encoding="utf-8") as handle:
        lines = [(number, line.strip()) for number, line in enumerate(handle, start=1)]
    lines = [(number, line) for number, line in lines if line]

    samples: list[FaceSample] = []
    dropped = {"invalid": 0, "degenerate": 0, "small": 0}
    pos = 0

    def fail(number: int, message: str) -> ValueError:
        return ValueError(f"{txt_path}: line {number}: {message}")

    while pos < len(lines):
        number, rel = lines[pos]
        if _numbers(rel) is not None:
            raise fail(number, f"expected an image path, got {rel!r} (wrong face count above?)")
        pos += 1
        if pos >= len(lines):
            raise fail(number + 1, f"missing face count after image path {rel!r}")
        count_number, count_text = lines[pos]
        try:
            count = int(count_text)
        except ValueError:
            raise fail(count_number, f"expected a face count, got {count_text!r}") from None
        if count < 0:
            raise fail(count_number, f"negative face count {count}")
        pos += 1
        if count == 0 and pos < len(lines):
            dummy = _numbers(lines[pos][1])
            if dummy is not None and len(dummy) == _WIDER_COLUMNS:
                pos += 1  # the dummy line of a 0-face image

        boxes: list[list[float]] = []
        for k in range(count):
            if pos >= len(lines):
                raise fail(lines[-1][0] + 1, f"end of file: image {rel!r} declares {count} faces, found {k}")
            face_number, face_text = lines[pos]
            values = _numbers(face_text)
            if values is None or len(values) != _WIDER_COLUMNS:
                raise fail(
                    face_number,
                    f"expected {_WIDER_COLUMNS} numbers (x y w h blur expression illumination invalid "
                    f"occlusion pose), got {face_text!r}",
                )
            pos += 1
            x, y, w, h = values[:4]
            if w <= 0 or h <= 0:
                dropped["degenerate"] += 1
                continue
            if not keep_invalid and values[_WIDER_INVALID] == 1:
                dropped["invalid"] += 1
                continue
            if w < min_size or h < min_size:
                dropped["small"] += 1
                continue
            boxes.append([x, y, x + w, y + h])
        samples.append(FaceSample.without_landmarks(images_root / rel, np.asarray(boxes, np.float32)))

    logger.debug("%s: %d images; dropped faces: %s", txt_path, len(samples), dropped)
    if require_images:
        present = [s for s in samples if s.image_path.is_file()]
        missing = len(samples) - len(present)
        if missing:
            logger.info(
                "%s: %d of %d images are missing under %s; dropped",
                txt_path,
                missing,
                len(samples),
                images_root,
            )
        samples = present
    return samples


# ------------------------------------------------------------------------------------------ RetinaFace


def read_retinaface_labels(txt_path: PathLike, images_root: PathLike) -> list[FaceSample]:
    """Read a RetinaFace-style ``label.txt``.

    Format: ``# relative/path.jpg`` introduces an image (further tokens on that line are ignored); each
    following non-empty line is a face, either ``x y w h`` or ``x y w h`` followed by 5 ``lx ly flag``
    triples and (usually) one extra value (19 or 20 numbers). A face whose first landmark ``x`` is
    negative (``-1``) has no landmarks. Boxes become ``(x, y, x + w, y + h)``; zero- or negative-size
    boxes are dropped. Images with no face are kept.

    Raises:
        ValueError: malformed file (a face line before the first ``#`` line, a line with a number of
            values other than 4, 19 or 20, or a non-numeric value); the message gives the line number.
    """
    txt_path = Path(txt_path)
    images_root = Path(images_root)
    samples: list[FaceSample] = []
    current: tuple[Path, list[list[float]], list[list[float]], list[bool]] | None = None
    degenerate = 0

    def flush() -> None:
        if current is not None:
            samples.append(_make_sample(*current))

    with txt_path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                tokens = line[1:].split()
                if not tokens:
                    raise ValueError(f"{txt_path}: line {number}: '#' line without an image path")
                flush()
                current = (images_root / tokens[0], [], [], [])
                continue
            if current is None:
                raise ValueError(f"{txt_path}: line {number}: face line before the first '# image' line")
            values = _numbers(line)
            if values is None or len(values) not in (4, 19, 20):
                raise ValueError(
                    f"{txt_path}: line {number}: expected 4, 19 or 20 numbers "
                    f"(x y w h [5 x (lx ly flag) extra]), got {line!r}"
                )
            x, y, w, h = values[:4]
            if w <= 0 or h <= 0:
                degenerate += 1
                continue
            current[1].append([x, y, x + w, y + h])
            if len(values) >= 19 and values[4] >= 0:
                current[2].append([values[4 + 3 * k + j] for k in range(5) for j in range(2)])
                current[3].append(True)
            else:
                current[2].append([0.0] * 10)
                current[3].append(False)
    flush()
    if degenerate:
        logger.debug("%s: dropped %d zero/negative-size boxes", txt_path, degenerate)
    return samples


# ---------------------------------------------------------------------------------------- JSON lines


def read_jsonl(path: PathLike, images_root: PathLike) -> list[FaceSample]:
    """Read featherface's JSON-lines format (see the module docstring). Blank lines are skipped.

    Raises:
        ValueError: invalid JSON, a missing key, a box that is not 4 numbers with ``x2 > x1`` and
            ``y2 > y1``, or landmarks that are not ``null`` or 5 ``[x, y]`` pairs; the message gives the
            line number.
    """
    path = Path(path)
    images_root = Path(images_root)
    samples: list[FaceSample] = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                samples.append(_parse_jsonl_record(json.loads(raw), images_root))
            except (ValueError, TypeError, KeyError) as exc:
                detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
                raise ValueError(f"{path}: line {number}: {detail}") from exc
    return samples


def _parse_jsonl_record(record: object, images_root: Path) -> FaceSample:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    image = record["image"]
    if not isinstance(image, str) or not image:
        raise ValueError(f"'image' must be a non-empty string, got {image!r}")
    faces = record["faces"]
    if not isinstance(faces, list):
        raise ValueError(f"'faces' must be a list, got {type(faces).__name__}")
    boxes: list[list[float]] = []
    landmarks: list[list[float]] = []
    has: list[bool] = []
    for index, face in enumerate(faces):
        if not isinstance(face, dict):
            raise ValueError(f"face {index}: expected an object")
        box = np.asarray(face["box"], dtype=np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise ValueError(f"face {index}: 'box' must be 4 finite numbers, got {face['box']!r}")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"face {index}: 'box' must have x2 > x1 and y2 > y1, got {face['box']!r}")
        boxes.append(box.tolist())
        points = face.get("landmarks")
        if points is None:
            landmarks.append([0.0] * 10)
            has.append(False)
        else:
            array = np.asarray(points, dtype=np.float64)
            if array.shape != (5, 2) or not np.all(np.isfinite(array)):
                raise ValueError(f"face {index}: 'landmarks' must be null or 5 [x, y] pairs, got {points!r}")
            landmarks.append(array.reshape(10).tolist())
            has.append(True)
    sample = _make_sample(images_root / image, boxes, landmarks, has)
    regions = record.get("ignore") or []
    if regions:
        ignore = np.asarray(regions, dtype=np.float64)
        if ignore.ndim != 2 or ignore.shape[1] != 4 or not np.all(np.isfinite(ignore)):
            raise ValueError(f"'ignore' must be a list of [x1, y1, x2, y2] boxes, got {regions!r}")
        sample = FaceSample(sample.image_path, sample.boxes, sample.landmarks, sample.has_landmarks, ignore)
    return sample


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
"""File name endings (any case) that the training stack treats as images: :func:`image_files`, and the
endings :func:`read_voc` tries when an XML names an image by another ending."""


def image_files(root: PathLike) -> list[Path]:
    """Every image file (ending in :data:`IMAGE_SUFFIXES`, any case) under ``root`` at any depth, sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_voc(annotations_dir: PathLike, images_root: PathLike, classes: Sequence[str] | None = None) -> list[FaceSample]:
    """Read the Pascal VOC XML files of ``annotations_dir`` (``*.xml``, sorted by name) as face samples.

    Each file names its image in ``<filename>`` (its base name), looked up anywhere under
    ``images_root`` (if no file has that name, the same stem with another ending of
    :data:`IMAGE_SUFFIXES` is taken: collections re-encode images); an XML whose image is not there is
    skipped (counted in a log message). Every ``<object>``
    whose ``<name>`` is in ``classes`` (default: every object, e.g. the ``with_mask`` /
    ``without_mask`` / ``mask_weared_incorrect`` faces of the face-mask collections) is a face without
    landmarks; objects flagged ``<difficult>1</difficult>`` become ignore regions
    (:attr:`FaceSample.ignore`). An XML with no object is an image with no face.

    Coordinates: VOC's integer corners ``xmin, ymin, xmax, ymax`` are taken as the continuous box
    ``(xmin, ymin, xmax, ymax)``; the one-pixel difference of VOC's 1-based, inclusive convention is
    below the annotation noise of these collections. Boxes are clipped to ``<size>`` when it is given,
    and boxes left with no width or height are dropped.

    Raises:
        ValueError: ``annotations_dir`` is not a folder, or a file that is not well-formed XML, lacks
            ``<filename>`` or has a ``<bndbox>`` without four numbers (the message names the file).
    """
    import xml.etree.ElementTree as ET

    annotations_dir, images_root = Path(annotations_dir), Path(images_root)
    if not annotations_dir.is_dir():
        raise ValueError(f"VOC annotations folder not found: {annotations_dir}")
    wanted = None if classes is None else set(classes)
    index = _image_index(images_root)
    samples: list[FaceSample] = []
    missing = dropped = 0
    for xml_path in sorted(annotations_dir.glob("*.xml")):
        try:
            root = ET.parse(xml_path).getroot()
            filename = (root.findtext("filename") or "").strip()
            if not filename:
                raise ValueError("no <filename>")
            image = _find_image(index, filename)
            if image is None:
                missing += 1
                continue
            width = float(root.findtext("size/width") or 0)
            height = float(root.findtext("size/height") or 0)
            faces: list[list[float]] = []
            ignore: list[list[float]] = []
            for obj in root.iter("object"):
                if wanted is not None and (obj.findtext("name") or "").strip() not in wanted:
                    continue
                box = [float(obj.findtext(f"bndbox/{k}") or "nan") for k in ("xmin", "ymin", "xmax", "ymax")]
                if not all(np.isfinite(box)):
                    raise ValueError("a <bndbox> without four numbers")
                if width > 0 and height > 0:
                    box = [min(max(v, 0.0), limit) for v, limit in zip(box, (width, height, width, height))]
                if box[2] <= box[0] or box[3] <= box[1]:
                    dropped += 1
                    continue
                (ignore if (obj.findtext("difficult") or "0").strip() == "1" else faces).append(box)
        except (ET.ParseError, ValueError) as exc:
            raise ValueError(f"{xml_path}: {exc}") from exc
        sample = FaceSample.without_landmarks(image, np.asarray(faces, np.float32).reshape(-1, 4))
        samples.append(dataclasses.replace(sample, ignore=np.asarray(ignore, np.float32).reshape(-1, 4)))
    if missing or dropped:
        logger.info("%s: %d XML file(s) name an image not in %s (skipped); %d empty box(es) dropped",
                    annotations_dir, missing, images_root, dropped)
    return samples


def _image_index(images_root: Path) -> dict[str, Path]:
    """Every image file under ``images_root`` (any depth) by lower-case name; the first in sorted order wins."""
    index: dict[str, Path] = {}
    for path in image_files(images_root):
        index.setdefault(path.name.lower(), path)
    return index


def _find_image(index: dict[str, Path], filename: str) -> Path | None:
    """The image named ``filename`` (its base name), else the same stem with another image ending."""
    name = Path(filename.replace("\\", "/")).name
    if name.lower() in index:
        return index[name.lower()]
    stem = Path(name).stem.lower()
    for suffix in IMAGE_SUFFIXES:
        if stem + suffix in index:
            return index[stem + suffix]
    return None


def merge_labels(primary: Sequence[FaceSample], secondary: Sequence[FaceSample],
                 iou_threshold: float = 0.4) -> list[FaceSample]:
    """Each image of ``primary`` with the faces of both label sets (e.g. human boxes + teacher labels).

    For an image of ``primary`` that ``secondary`` also labels (same ``image_path``): the faces are the
    secondary's (with their landmarks) plus every primary face whose IoU with all of them is at most
    ``iou_threshold`` (without landmarks); the ignore regions are the primary's plus the secondary's
    that overlap no added primary face by more than ``iou_threshold``. Other images of ``primary`` are
    kept as they are; images only in ``secondary`` are left out. Order of ``primary`` is kept.
    """
    by_path = {s.image_path: s for s in secondary}
    merged: list[FaceSample] = []
    for p in primary:
        s = by_path.get(p.image_path)
        if s is None:
            merged.append(p)
            continue
        new = np.ones(p.num_faces, bool)
        if p.num_faces and s.num_faces:
            new = box_iou(torch.tensor(p.boxes), torch.tensor(s.boxes)).amax(1).numpy() <= iou_threshold
        added = p.boxes[new]
        ignore = s.ignore
        if len(ignore) and len(added):
            keep = box_iou(torch.tensor(ignore), torch.tensor(added)).amax(1).numpy() <= iou_threshold
            ignore = ignore[keep]
        merged.append(FaceSample(
            p.image_path,
            np.concatenate([s.boxes, added]),
            np.concatenate([s.landmarks, p.landmarks[new]]),
            np.concatenate([s.has_landmarks, p.has_landmarks[new]]),
            np.concatenate([p.ignore, ignore]),
        ))
    return merged


def write_jsonl(samples: Sequence[FaceSample], path: PathLike, images_root: PathLike) -> None:
    """Write ``samples`` in featherface's JSON-lines format; image paths are stored relative to
    ``images_root`` with ``/`` separators. Float32 values are written exactly (read back bit-identical).

    Raises:
        ValueError: an image path is not under ``images_root``.
    """
    path = Path(path)
    images_root = Path(images_root)
    with path.open("w", encoding="utf-8") as handle:
        for sample in samples:
            try:
                rel = sample.image_path.relative_to(images_root)
            except ValueError:
                raise ValueError(f"{sample.image_path} is not under images_root {images_root}") from None
            faces = []
            for k in range(sample.num_faces):
                faces.append(
                    {
                        "box": [float(v) for v in sample.boxes[k]],
                        "landmarks": [[float(x), float(y)] for x, y in sample.landmarks[k]]
                        if sample.has_landmarks[k]
                        else None,
                    }
                )
            record: dict[str, object] = {"image": rel.as_posix(), "faces": faces}
            if len(sample.ignore):
                record["ignore"] = [[float(v) for v in box] for box in sample.ignore]
            handle.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------------------------- images, dataset


def load_image_bgr(path: PathLike) -> np.ndarray:
    """Load an image for training as ``uint8 [H, W, 3]`` BGR (grey images expanded).

    Uses the package's single image loader, :func:`featherface.io.read_image_file` (EXIF
    orientation applied, so boxes annotated on the displayed image line up).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: the file cannot be decoded (an :class:`featherface.errors.ImageError`, naming it).
    """
    from featherface.io import read_image_file

    return read_image_file(path)


class FaceDataset(Dataset):
    """Training dataset over :class:`FaceSample` s.

    ``dataset[i]`` (or ``dataset[(i, size)]``: the transform at network size ``size``, for a
    dataclass transform such as :class:`~featherface.train.augment.TrainTransform`) loads the BGR
    image of ``samples[i]`` and returns
    ``transform(image, boxes, landmarks, has_landmarks, rng)`` as tensors: ``(image float32 [3, S, S],
    targets float32 [M, 15])`` (target layout in the module docstring), with
    ``rng = np.random.default_rng((seed, epoch, i))``. The result is therefore a deterministic function of
    ``(seed, epoch, i)``, whichever worker process computes it. Call :meth:`set_epoch` before each epoch;
    with a ``DataLoader`` use ``persistent_workers=False`` (the default) so that workers see the new epoch.
    """

    def __init__(self, samples: Sequence[FaceSample], transform: Transform, seed: int = 0) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws the next items use."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        transform = self.transform
        if isinstance(index, tuple):  # (index, network size): a batch of another size (TrainConfig.image_sizes)
            index, size = index
            transform = dataclasses.replace(transform, image_size=int(size))  # type: ignore[type-var]
        if index < 0:
            index += len(self.samples)
        if not 0 <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for {len(self.samples)} samples")
        sample = self.samples[index]
        image = load_image_bgr(sample.image_path)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if len(sample.ignore):
            image_chw, targets = transform(image, sample.boxes, sample.landmarks, sample.has_landmarks, rng,
                                           ignore=sample.ignore)  # type: ignore[call-arg]
        else:
            image_chw, targets = transform(image, sample.boxes, sample.landmarks, sample.has_landmarks, rng)
        image_tensor = torch.from_numpy(np.ascontiguousarray(image_chw, dtype=np.float32))
        target_tensor = torch.from_numpy(
            np.ascontiguousarray(targets, dtype=np.float32).reshape(-1, TARGET_DIM)
        )
        return image_tensor, target_tensor


def detection_collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Collate ``(image [3, S, S], targets [M_i, 15])`` items into ``(images [B, 3, S, S], [targets_i])``.

    Targets stay a list because ``M_i`` differs between images (``M_i`` may be 0).
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    images = torch.stack([image for image, _ in batch], dim=0)
    targets = [target for _, target in batch]
    return images, targets
