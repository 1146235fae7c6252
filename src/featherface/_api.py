"""``load_model`` and :class:`FaceDetector`: the detection pipeline (:mod:`featherface.pipeline`) bound to
one network, one engine and default options.

Thread safety: a :class:`FaceDetector` holds no per-call state. Its network runs in eval mode under
``torch.inference_mode`` (or in an ONNX Runtime session, whose ``run`` is thread-safe), options are
immutable and per-call overrides are local, so one detector may serve concurrent ``detect`` calls
from several threads (they share the process's torch threads).

Speed: by default the detector runs a BatchNorm-folded copy of its network
(:func:`featherface._models.fuse.fuse_for_inference`), in channels-last memory layout on CPU; ``fuse=False``
runs ``detector.network`` itself. ``backend="onnxruntime"`` runs the network with ONNX Runtime
instead (:mod:`featherface._engines.onnxruntime`); every other stage is the same code for every backend.
The fused copy is made once, when the detector is created: later changes to ``detector.network``'s
weights are not seen by ``detect`` (create a new detector, or use ``fuse=False``, whose detector runs
``network`` itself; then do not call ``network.train()`` or change its weights while other threads
are detecting).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from featherface import _stream
from featherface._engines import Engine, make_runner, select_engine
from featherface._models.config import ModelConfig
from featherface._options import DetectorOptions
from featherface._weights import load_network
from featherface.detection import Detection
from featherface.io import ColorOrder, ImageInput, is_file_object
from featherface.pipeline import DetectionPipeline, preprocess

logger = logging.getLogger(__name__)

__all__ = ["FaceDetector", "load_model"]


class FaceDetector:
    """A face detector: network + engine + detection options.

    Create it with :func:`featherface.load_model`. ``detect`` returns a list of :class:`Detection`
    with boxes and landmarks in original-image pixels. The keywords ``device``, ``backend``, ``fuse``,
    ``channels_last``, ``num_threads`` and ``onnx_path`` mean what they mean for ``load_model``
    (``engine``: an engine choice already checked, as ``load_model`` passes it; the other engine
    keywords are then not used). The detector stores what it is given and the engine it makes.

    Attributes:
        network: the network as loaded (eval mode, BatchNorms not folded): use it to read or save
            the weights. With ``fuse=True`` (default) ``detect`` runs a folded copy made when the
            detector was created, so later changes to ``network`` are not seen by ``detect``.
        pipeline: the :class:`~featherface.pipeline.DetectionPipeline` every ``detect*`` call runs
            (``pipeline(prepared, options)``); its stages are the functions of
            :mod:`featherface.pipeline`, for benchmarks and custom batching.
        runner: the engine that runs the network (``pipeline.runner``; ``runner(batch)`` -> raw
            outputs for a batch built by ``make_batch(images, config.mean_bgr, runner.batch_spec)``):
            a torch runner (``runner.module`` is the module actually run) or an ONNX Runtime runner
            (``runner.session``, ``runner.path``).
        config: the model's :class:`ModelConfig`.
        options: the default :class:`DetectorOptions` of ``detect`` calls.
    """

    def __init__(
        self,
        network: nn.Module,
        config: ModelConfig,
        *,
        device: str | torch.device | None = None,
        options: DetectorOptions | None = None,
        weights_source: str = "random",
        backend: str = "torch",
        fuse: bool = True,
        channels_last: bool | None = None,
        num_threads: int | None = None,
        onnx_path: str | os.PathLike | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.options = _checked_options(options)
        if engine is not None and (device, backend, fuse, channels_last, num_threads, onnx_path) != (
                None, "torch", True, None, None, None):
            raise ValueError("pass engine= or the engine keywords (device, backend, ...), not both")
        if engine is None:
            engine = select_engine(backend, device, fuse=fuse, channels_last=channels_last,
                                   num_threads=num_threads, onnx_path=onnx_path)
        self.device = engine.device
        self.network = network.to(self.device).eval()
        self.config = config
        self.weights_source = weights_source
        self.num_threads = engine.num_threads
        runner = make_runner(self.network, config, engine, cache=weights_source != "random")
        self.pipeline = DetectionPipeline(config, runner)

    @property
    def runner(self) -> Any:
        """The engine of :attr:`pipeline` (see the class docstring)."""
        return self.pipeline.runner

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def backend(self) -> str:
        """The inference engine in use: ``"torch"`` or ``"onnxruntime"``."""
        return str(self.runner.name)

    def __repr__(self) -> str:
        return (
            f"FaceDetector(model={self.name!r}, backend={self.backend!r}, device={str(self.device)!r}, "
            f"weights={self.weights_source!r})"
        )

    def detect(self, image: ImageInput, *, color: ColorOrder = "rgb", **options: Any) -> list[Detection]:
        """Detect faces in one image.

        Args:
            image: path, encoded bytes, binary file object (read from its current position), numpy
                array (``H x W x 3``/``x4``, ``H x W``, uint8, uint16 or float in ``[0, 1]``), PIL image
                or torch tensor ``3 x H x W``; see :mod:`featherface.io`.
            color: channel order of numpy arrays and tensors: ``"rgb"`` (default) or ``"bgr"``
                (OpenCV frames). Ignored for files, bytes, file objects and PIL images.
            **options: per-call overrides of :class:`DetectorOptions` (e.g. ``score_threshold=0.7``).

        Returns:
            Faces sorted by descending score; boxes and landmarks in original-image pixels.
        """
        if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] != 1:
            raise ValueError(f"detect() takes one image; got a batch tensor of shape {tuple(image.shape)}, use detect_batch")
        opts = self.options.updated(**options)
        return self.pipeline([preprocess(image, opts, color=color)], opts)[0]

    __call__ = detect

    def detect_batch(
        self, images: Iterable[ImageInput] | torch.Tensor, *, color: ColorOrder = "rgb", **options: Any
    ) -> list[list[Detection]]:
        """Detect faces in several images (any mix of sizes and input types).

        Images whose network input has the same size run as one batch; the result equals
        ``[detect(img) for img in images]``. A ``B x 3 x H x W`` tensor is split into its images.
        """
        opts = self.options.updated(**options)
        if isinstance(images, torch.Tensor):
            if images.ndim != 4:
                raise ValueError(f"detect_batch expects a B x 3 x H x W tensor or a list of images, got shape {tuple(images.shape)}")
            images = list(images)
        elif isinstance(images, (str, bytes, np.ndarray)) or is_file_object(images) or not isinstance(images, Iterable):
            raise TypeError("detect_batch expects a list (or other iterable) of images")
        prepared = [preprocess(img, opts, color=color) for img in images]
        return _stream.detect_all(self.pipeline, prepared, opts)

    def detect_stream(
        self, inputs: Iterable[ImageInput], *, batch_size: int = 8, workers: int = 0, color: ColorOrder = "rgb",
        max_pending: int | None = None, **options: Any,
    ) -> Iterator[tuple[Any, list[Detection] | Exception]]:
        """Detect faces in many images (a folder's files, a stream of frames), batched, with parallel
        decoding; yields ``(item, detections)`` in input order, or ``(item, exception)`` for an input
        that could not be read (the stream goes on).

        Args:
            inputs: an iterable of anything :meth:`detect` accepts. With ``workers=0`` it is consumed
                lazily (endless streams work); with ``workers > 0`` it is listed first.
            batch_size: images per network call at most (images of the same network-input size only:
                no padding, so each result equals ``detect(item)`` to float rounding).
            workers: decoding worker processes (``DataLoader(num_workers=workers)``); 0 decodes here.
            color: channel order of numpy arrays and tensors, as in ``detect``.
            max_pending: run the oldest partial bucket once this many decoded images wait (default
                ``4 * batch_size``); bounds memory when sizes vary.
            **options: per-call :class:`DetectorOptions` overrides.

        Yields:
            ``(item, detections)``, or ``(item, exception)`` for an unreadable input
            (``FileNotFoundError``, :class:`featherface.errors.ImageError`, another ``ValueError``
            such as the ``max_input_pixels`` cap, ``OSError`` or ``TypeError``); ``item`` is the input
            object itself. Errors of the network itself propagate.
        """
        opts = self.options.updated(**options)
        records = _stream.stream(self.pipeline, inputs, batch_size=batch_size, workers=workers, color=color,
                                 max_pending=max_pending, options=opts)
        return ((item, result) for item, result, _ in records)


def load_model(
    name: str | None = None,
    *,
    device: str | torch.device | None = None,
    weights: str | os.PathLike | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    pretrained: bool = True,
    backend: str = "torch",
    fuse: bool = True,
    channels_last: bool | None = None,
    num_threads: int | None = None,
    onnx_path: str | os.PathLike | None = None,
    sha256: str | None = None,
    options: DetectorOptions | None = None,
    **overrides: Any,
) -> FaceDetector:
    """Create a :class:`FaceDetector`.

    Args:
        name: a registered model (:func:`featherface.list_models`), default ``"v2_ultra"``. May be
            ``None`` when ``weights`` is a folder with its own ``config.json``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available, else CPU.
        weights: your own weights: a ``.safetensors`` file or a folder with ``config.json`` +
            ``model.safetensors``. Default: the published weights (Hub, then packaged copy).
        revision: a Hub commit other than the pinned one (its hash is then not verified).
        cache_dir: Hugging Face cache folder (default ``HF_HOME``/``HF_HUB_CACHE``).
        local_files_only: never touch the network (the cache, then the packaged copy).
        sha256: expected sha256 of your own ``weights=`` file; a mismatch raises
            ``WeightsIntegrityError`` (registered weights are always checked against the registry).
        pretrained: ``False`` gives a randomly initialised network (tests, training from scratch).
        backend: ``"torch"`` (default) or ``"onnxruntime"`` (CPU only; needs the onnx extra:
            ``pip install "featherface[onnx]"``). The ONNX Runtime backend runs the raw ONNX graph
            of the loaded weights, exported on first use and cached (see
            docs/deployment.md); detections are decoded by the same code as with torch.
            ``detector.backend`` tells which one runs.
        fuse: run a copy of the network with every BatchNorm folded into the preceding conv
            (same outputs to float32 rounding, faster). ``detector.network`` stays the unfused network.
        channels_last: channels-last memory layout for the torch backend; ``None`` (default): on
            for a fused network on CPU, where it is faster.
        num_threads: CPU threads of each inference call. With torch, the count is set for the
            duration of the call and restored after (``torch.set_num_threads`` is process-wide while
            the call runs); with ONNX Runtime, the session's intra-op threads. ``None`` (default):
            on the CPU, one thread for network inputs up to about a megapixel
            (1,100,000 pixels), the process's count above;
            chosen so that several processes or a busy core next to the detector do not slow each
            call several times over (docs/concepts.md, "Threads").
        onnx_path: with ``backend="onnxruntime"``: use this raw ONNX graph (exported there first if
            the file does not exist) instead of the cache.
        options: the :class:`DetectorOptions` defaults of this detector (default ``DetectorOptions()``).
        **overrides: single options changed from ``options`` (e.g. ``score_threshold=0.7``).

    Raises:
        featherface.errors.UnknownModelError: (a ``ValueError``) a name that is not registered.
        featherface.errors.DeviceError: (a ``ValueError``) a device this machine does not have.
        ValueError: an unknown backend or an option value out of range.
        TypeError: an unknown option, or an option value of the wrong type (the message names the
            option, the value and what it takes).
        ImportError: ``backend="onnxruntime"`` without onnxruntime installed.
        featherface.errors.WeightsError: weights missing, corrupt or not matching (subclasses for hash
            or config mismatches, and ``WeightsNotInstalledError`` for ``v1`` before
            ``featherface convert-reference``).
    """
    opts = _checked_options(options).updated(**overrides)
    engine = select_engine(backend, device, fuse=fuse, channels_last=channels_last, num_threads=num_threads,
                           onnx_path=onnx_path)  # checked before any weights are read
    loaded = load_network(name, weights=weights, revision=revision, cache_dir=cache_dir,
                          local_files_only=local_files_only, sha256=sha256, pretrained=pretrained)
    return FaceDetector(loaded.network, loaded.config, options=opts, weights_source=loaded.source, engine=engine)


def _checked_options(options: DetectorOptions | None) -> DetectorOptions:
    if options is not None and not isinstance(options, DetectorOptions):
        raise TypeError(f"options must be a DetectorOptions, got {type(options).__name__}")
    return options or DetectorOptions()
