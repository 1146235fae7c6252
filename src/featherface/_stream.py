"""Batching engine of the pipeline: same-size buckets, worker decoding, results in input order.

Private machinery of :class:`featherface.FaceDetector` (``detect_batch``, ``detect_stream``) and of
``featherface detect``; the stages themselves are :mod:`featherface.pipeline`'s.

::

    inputs --(preprocess, in the calling process or DataLoader workers)--> PreparedImage
           --(buckets of equal network-input size, <= batch_size)--> DetectionPipeline.__call__
           --> (item, detections) in input order

* Preprocessing runs in ``workers`` worker processes (a ``torch.utils.data.DataLoader``); with
  ``workers=0`` it runs in the calling process, lazily, so an endless iterator (camera frames)
  works. With ``workers > 0`` the inputs are first listed (they are handed to the worker processes),
  so give a list of paths, or bytes/arrays that fit in memory. Workers receive the options, never the
  network (nor an ONNX Runtime session).
* Images are batched only with images of exactly the same network-input size (no padding), so every
  result equals ``detector.detect(item)`` up to float rounding of batched convolutions. Folders of
  same-size photos (or ``input_size=(H, W)``) batch fully; with many sizes the batches are smaller.
  A bucket runs when it holds ``batch_size`` images, or early when ``max_pending`` images wait
  (then the bucket holding the oldest waiting image runs), which bounds memory and latency.
* An input that cannot be read or decoded does not stop a stream: its result is the exception
  (``FileNotFoundError``, :class:`featherface.errors.ImageError`, another ``ValueError`` such as the
  ``max_input_pixels`` cap, ``OSError`` or ``TypeError``) in place of the detection list. Errors of the
  network itself propagate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from featherface._options import DetectorOptions
from featherface.detection import Detection
from featherface.io import ColorOrder, is_file_object
from featherface.pipeline import DetectionPipeline, PreparedImage, preprocess

StreamResult = list[Detection] | Exception
"""What a stream yields for an item: its faces, or the exception that prevented reading it."""

ITEM_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError, TypeError)
"""Per-input failures reported in the stream (``ImageError`` and ``FileNotFoundError`` included)."""


class _Entry(NamedTuple):
    position: int  # index in the input
    prepared: PreparedImage | None
    error: Exception | None


def _prepare_one(index: int, item: Any, color: ColorOrder, opts: DetectorOptions, as_tensor: bool) -> _Entry:
    try:
        prepared = preprocess(item, opts, color=color)
    except ITEM_ERRORS as exc:
        return _Entry(index, None, exc)
    if as_tensor:  # travels back from the worker through shared memory
        img = prepared.image
        data = np.array(img, copy=True) if not img.flags.writeable else np.ascontiguousarray(img)
        prepared = PreparedImage(torch.from_numpy(data), prepared.original_size)  # type: ignore[arg-type]
    return _Entry(index, prepared, None)


class _PreparedInputs(Dataset):  # type: ignore[type-arg]
    """``dataset[i]``: input ``i`` preprocessed for the network (run by DataLoader workers)."""

    def __init__(self, items: Sequence[Any], color: ColorOrder, opts: DetectorOptions) -> None:
        self.items, self.color, self.opts = items, color, opts

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> _Entry:
        return _prepare_one(index, self.items[index], self.color, self.opts, as_tensor=True)


def _no_collate(sample: _Entry) -> _Entry:
    return sample


def check_inputs(inputs: Any) -> None:
    """``TypeError`` unless ``inputs`` is an iterable of images (not one image)."""
    if isinstance(inputs, (str, bytes, bytearray, memoryview, os.PathLike, np.ndarray)) or is_file_object(inputs) or (
        type(inputs).__module__.startswith(("torch", "PIL.")) and not isinstance(inputs, (list, tuple))
    ):
        raise TypeError("detect_stream expects an iterable of images (paths, bytes, arrays...), not one image; "
                        "wrap a single image in a list or use detect()")
    if not isinstance(inputs, Iterable):
        raise TypeError(f"detect_stream expects an iterable of images, got {type(inputs).__name__}")


def _source(inputs: Iterable[Any], workers: int, color: ColorOrder, opts: DetectorOptions) -> Iterator[tuple[Any, _Entry]]:
    if workers == 0:
        for i, item in enumerate(inputs):
            yield item, _prepare_one(i, item, color, opts, as_tensor=False)
        return
    items = inputs if isinstance(inputs, Sequence) else list(inputs)
    if not items:
        return
    loader = DataLoader(
        _PreparedInputs(items, color, opts), batch_size=None, shuffle=False, num_workers=workers,
        collate_fn=_no_collate,  # type: ignore[arg-type]  # batch_size=None: called per sample
        prefetch_factor=4, persistent_workers=False,
    )
    for entry in loader:  # in order: the DataLoader returns samples in sampler order
        yield items[entry.position], entry


def run_buckets(pipeline: DetectionPipeline, entries: Iterable[tuple[Any, _Entry]], *, batch_size: int, limit: int,
                options: DetectorOptions) -> Iterator[tuple[Any, StreamResult, tuple[int, int] | None]]:
    """The bucketing of every multi-image path: ``(item, result, original (H, W) or None)`` in input order.

    ``entries`` are ``(item, entry)`` pairs in input order; a bucket of one network-input size runs
    (:meth:`DetectionPipeline.__call__`) when it holds ``batch_size`` images, or when ``limit``
    images wait (then the bucket holding the oldest one).
    """
    buckets: dict[tuple[int, int], list[tuple[Any, _Entry]]] = {}
    done: dict[int, tuple[Any, StreamResult, tuple[int, int] | None]] = {}
    next_out = 0
    waiting = 0

    def run(size: tuple[int, int]) -> None:
        nonlocal waiting
        group = buckets.pop(size)
        waiting -= len(group)
        prepared = [e.prepared for _, e in group]
        for (item, e), faces in zip(group, pipeline(prepared, options)):  # type: ignore[arg-type]
            done[e.position] = (item, faces, e.prepared.original_size)  # type: ignore[union-attr]

    def oldest() -> tuple[int, int]:
        return min(buckets, key=lambda s: buckets[s][0][1].position)

    for item, e in entries:
        if e.prepared is None:  # preprocessing failed: the entry carries its exception
            assert e.error is not None
            done[e.position] = (item, e.error, None)
        else:
            size = e.prepared.network_size
            bucket = buckets.setdefault(size, [])
            bucket.append((item, e))
            waiting += 1
            if len(bucket) >= batch_size:
                run(size)
            elif waiting >= limit:
                run(oldest())
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1
    while buckets:
        run(oldest())
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1


def detect_all(pipeline: DetectionPipeline, prepared: Sequence[PreparedImage],
               options: DetectorOptions) -> list[list[Detection]]:
    """Faces of every prepared image, each size group in one network call (``detect_batch``)."""
    n = len(prepared)
    if n == 0:
        return []
    entries = ((i, _Entry(i, p, None)) for i, p in enumerate(prepared))
    return [faces for _, faces, _ in run_buckets(pipeline, entries, batch_size=n, limit=n, options=options)]  # type: ignore[misc]


def stream(pipeline: DetectionPipeline, inputs: Iterable[Any], *, batch_size: int, workers: int, color: ColorOrder,
           max_pending: int | None, options: DetectorOptions) -> Iterator[tuple[Any, StreamResult, tuple[int, int] | None]]:
    """``(item, result, original size or None)`` for every input, in input order (see the module docstring)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    check_inputs(inputs)
    limit = max(batch_size, 4 * batch_size if max_pending is None else int(max_pending))
    return run_buckets(pipeline, _source(inputs, workers, color, options), batch_size=batch_size, limit=limit,
                       options=options)


class _Progress:
    """``N/total images, R images/s`` redrawn in place on stderr (``featherface detect`` on a TTY)."""

    def __init__(self, total: int, stream: Any, interval: float = 0.25) -> None:
        import time

        self.total, self.stream, self.interval = total, stream, interval
        self.done, self.t0, self.last, self.time = 0, time.perf_counter(), 0.0, time.perf_counter
        self.visible = False

    def clear(self) -> None:
        if self.visible:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.visible = False

    def update(self, n: int = 1, *, force: bool = False) -> None:
        self.done += n
        now = self.time()
        if force or now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            self.stream.write(f"\r{self.done}/{self.total} images, {rate:.1f} images/s")
            self.stream.flush()
            self.visible = True


def detect_files(
    pipeline: DetectionPipeline, paths: Sequence[Any], *, options: DetectorOptions, batch_size: int = 1,
    workers: int = 0, progress: Any = None,
) -> Iterator[tuple[Any, StreamResult, tuple[int, int] | None]]:
    """What ``featherface detect`` runs: :func:`stream` over files (BGR), with each image's original
    ``(height, width)`` (``None`` for a failed one) and an optional progress line on the text stream
    ``progress`` (cleared while the caller prints a result, so both can share a terminal)."""
    bar = _Progress(len(paths), progress) if progress is not None else None
    try:
        for record in stream(pipeline, paths, batch_size=max(1, batch_size), workers=workers, color="bgr",
                             max_pending=None, options=options):
            if bar is not None:
                bar.clear()
            yield record
            if bar is not None:
                bar.update(1, force=bar.done + 1 == bar.total)
    finally:
        if bar is not None and bar.visible:
            bar.stream.write("\n")
            bar.stream.flush()


__all__ = ["ITEM_ERRORS", "StreamResult", "detect_all", "detect_files", "run_buckets", "stream"]
