"""Batch inference over folders and streams: :func:`detect_stream` (``FaceDetector.detect_stream``).

Pipeline::

    inputs --(DataLoader workers: load_image + resize, i.e. FaceDetector._prepare)-->
    buckets of equal network-input size --(batch of <= batch_size)--> network --> decode -->
    (item, detections) in input order

* Decoding and resizing run in ``workers`` worker processes (a ``torch.utils.data.DataLoader``); with
  ``workers=0`` they run in the calling process, lazily, so an endless iterator (camera frames)
  works. With ``workers > 0`` the inputs are first listed (they are handed to the worker processes),
  so give a list of paths, or bytes/arrays that fit in memory.
* Images are batched only with images of exactly the same network-input size (no padding), so every
  result equals ``detector.detect(item)`` up to float rounding of batched convolutions. Folders of
  same-size photos (or ``input_size=(H, W)``) batch fully; with many sizes the batches are smaller.
  A bucket runs when it holds ``batch_size`` images, or early when ``max_pending`` images wait
  (then the bucket holding the oldest waiting image runs), which bounds memory and latency.
* On CUDA, batches are assembled in pinned host memory (uint8 when the images are uint8: 4x less
  to copy) and copied with ``non_blocking=True``; the float conversion and mean subtraction run on
  the GPU. On CPU the batch goes through the detector's own ``_to_tensor``.
* Results come out in input order. An input that cannot be read or decoded does not stop the
  stream: its result is the exception (``FileNotFoundError``, :class:`featherface.io.ImageError`,
  another ``ValueError`` such as the ``max_input_pixels`` cap, ``OSError`` or ``TypeError``) in place
  of the detection list, i.e. ``(item, exception)``. Errors of the network itself propagate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from featherface.io import ColorOrder
from featherface.types import Detection

if TYPE_CHECKING:
    from featherface.api import DetectorOptions, FaceDetector

StreamResult = list[Detection] | Exception
"""What :func:`detect_stream` yields for an item: its faces, or the exception that prevented reading it."""

ITEM_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError, TypeError)
"""Per-input failures reported in the stream (``ImageError`` and ``FileNotFoundError`` included)."""


class _Prepared(NamedTuple):
    position: int  # index in the input
    image: Any  # H x W x 3 BGR network input (numpy array, or tensor from a worker process)
    orig: tuple[int, int] | None  # original (H, W)
    error: Exception | None


def _prepare_one(index: int, item: Any, color: ColorOrder, opts: DetectorOptions, as_tensor: bool) -> _Prepared:
    from featherface.api import FaceDetector

    try:
        # ``_prepare`` reads nothing from the detector but its arguments, so worker processes call it
        # without one: the network (and an ONNX Runtime session) never has to be copied into them.
        img, orig = FaceDetector._prepare(None, item, color, opts)  # type: ignore[arg-type]
    except ITEM_ERRORS as exc:
        return _Prepared(index, None, None, exc)
    if as_tensor:  # travels back from the worker through shared memory
        data = np.array(img, copy=True) if not img.flags.writeable else np.ascontiguousarray(img)
        return _Prepared(index, torch.from_numpy(data), orig, None)
    return _Prepared(index, img, orig, None)


class _PreparedInputs(Dataset):  # type: ignore[type-arg]
    """``dataset[i]``: input ``i`` loaded and resized for the network (run by DataLoader workers)."""

    def __init__(self, items: Sequence[Any], color: ColorOrder, opts: DetectorOptions) -> None:
        self.items, self.color, self.opts = items, color, opts

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> _Prepared:
        return _prepare_one(index, self.items[index], self.color, self.opts, as_tensor=True)


def _no_collate(sample: _Prepared) -> _Prepared:
    return sample


def _check_inputs(inputs: Any) -> None:
    if isinstance(inputs, (str, bytes, bytearray, memoryview, os.PathLike, np.ndarray)) or (
        type(inputs).__module__.startswith(("torch", "PIL.")) and not isinstance(inputs, (list, tuple))
    ):
        raise TypeError("detect_stream expects an iterable of images (paths, bytes, arrays...), not one image; "
                        "wrap a single image in a list or use detect()")
    if not isinstance(inputs, Iterable):
        raise TypeError(f"detect_stream expects an iterable of images, got {type(inputs).__name__}")


def detect_stream(
    detector: FaceDetector,
    inputs: Iterable[Any],
    *,
    batch_size: int = 8,
    workers: int = 0,
    color: ColorOrder = "rgb",
    max_pending: int | None = None,
    **options: Any,
) -> Iterator[tuple[Any, StreamResult]]:
    """Detect faces in many images, batched, with parallel decoding; yields ``(item, result)`` in input order.

    Args:
        detector: the :class:`featherface.FaceDetector` to run.
        inputs: an iterable of anything :meth:`FaceDetector.detect` accepts (paths, encoded bytes,
            arrays, PIL images, tensors). With ``workers=0`` it is consumed lazily (endless streams work).
        batch_size: images per network call at most (images of the same network-input size only).
        workers: decoding worker processes (``DataLoader(num_workers=workers)``); 0 decodes in this process.
        color: channel order of numpy arrays and tensors, as in ``detect``.
        max_pending: run the oldest partial bucket once this many decoded images wait (default
            ``4 * batch_size``); bounds memory when sizes vary.
        **options: per-call :class:`featherface.DetectorOptions` overrides, as in ``detect``.

    Yields:
        ``(item, detections)`` with the same detections as ``detector.detect(item, **options)`` (to
        float rounding), or ``(item, exception)`` for an input that could not be read (see
        :data:`ITEM_ERRORS`); ``item`` is the input object itself.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    limit = max(batch_size, 4 * batch_size if max_pending is None else int(max_pending))
    opts = detector.options.updated(**options)
    _check_inputs(inputs)
    return ((item, result) for item, result, _ in _stream(detector, inputs, batch_size, workers, color, limit, opts))


def _source(inputs: Iterable[Any], workers: int, color: ColorOrder,
            opts: DetectorOptions) -> Iterator[tuple[Any, _Prepared]]:
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
    for prepared in loader:  # in order: the DataLoader returns samples in sampler order
        yield items[prepared.position], prepared


def _batch_tensor(detector: FaceDetector, images: list[Any]) -> torch.Tensor:
    if detector.device.type != "cuda":
        return detector._to_tensor([im.numpy() if isinstance(im, torch.Tensor) else im for im in images])
    arrays = [im.numpy() if isinstance(im, torch.Tensor) else np.asarray(im) for im in images]
    dtype = torch.uint8 if all(a.dtype == np.uint8 for a in arrays) else torch.float32
    h, w = arrays[0].shape[:2]
    host = torch.empty((len(arrays), h, w, 3), dtype=dtype, pin_memory=True)
    view = host.numpy()
    for j, a in enumerate(arrays):
        view[j] = a
    t = host.to(detector.device, non_blocking=True).permute(0, 3, 1, 2).float()  # channels-last in memory
    return t.sub_(detector._mean.to(detector.device))  # the runner takes any layout


def _stream(detector: FaceDetector, inputs: Iterable[Any], batch_size: int, workers: int, color: ColorOrder,
            limit: int, opts: DetectorOptions) -> Iterator[tuple[Any, StreamResult, tuple[int, int] | None]]:
    """``(item, result, original (H, W) or None)`` in input order."""
    buckets: dict[tuple[int, int], list[tuple[Any, _Prepared]]] = {}
    done: dict[int, tuple[Any, StreamResult, tuple[int, int] | None]] = {}
    next_out = 0
    waiting = 0

    def run(size: tuple[int, int]) -> None:
        nonlocal waiting
        entries = buckets.pop(size)
        waiting -= len(entries)
        raw = detector.forward_raw(_batch_tensor(detector, [p.image for _, p in entries]))
        for (item, p), det in zip(entries, detector._decode(raw, size, opts)):
            assert p.orig is not None
            done[p.position] = (item, detector._to_detections(det, size, p.orig), p.orig)

    for item, p in _source(inputs, workers, color, opts):
        if p.error is not None:
            done[p.position] = (item, p.error, None)
        else:
            size = (int(p.image.shape[0]), int(p.image.shape[1]))
            bucket = buckets.setdefault(size, [])
            bucket.append((item, p))
            waiting += 1
            if len(bucket) >= batch_size:
                run(size)
            elif waiting >= limit:  # run the bucket that holds the oldest waiting image
                run(min(buckets, key=lambda s: buckets[s][0][1].position))
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1
    while buckets:
        run(min(buckets, key=lambda s: buckets[s][0][1].position))
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1
    while next_out in done:  # pragma: no cover - everything was yielded above
        yield done.pop(next_out)
        next_out += 1


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
    detector: FaceDetector, paths: Sequence[Any], *, batch_size: int = 1, workers: int = 0,
    progress: Any = None, **options: Any,
) -> Iterator[tuple[Any, StreamResult, tuple[int, int] | None]]:
    """What ``featherface detect`` runs: :func:`detect_stream` over files, with each image's original
    ``(height, width)`` (``None`` for a failed one) and an optional progress line on the text stream
    ``progress`` (cleared while the caller prints a result, so both can share a terminal)."""
    limit = 4 * max(1, batch_size)
    opts = detector.options.updated(**options)
    bar = _Progress(len(paths), progress) if progress is not None else None
    try:
        for record in _stream(detector, paths, max(1, batch_size), workers, "bgr", limit, opts):
            if bar is not None:
                bar.clear()
            yield record
            if bar is not None:
                bar.update(1, force=bar.done + 1 == bar.total)
    finally:
        if bar is not None and bar.visible:
            bar.stream.write("\n")
            bar.stream.flush()


__all__ = ["ITEM_ERRORS", "StreamResult", "detect_files", "detect_stream"]
