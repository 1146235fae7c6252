"""``load_model`` and :class:`FaceDetector`: preprocess -> network -> decode -> NMS -> :class:`Detection`.

Thread safety: a :class:`FaceDetector` holds no per-call state. Its network runs in eval mode under
``torch.inference_mode`` (or in an ONNX Runtime session, whose ``run`` is thread-safe), options are
immutable and per-call overrides are local, so one detector may serve concurrent ``detect`` calls
from several threads (they share the process's torch threads).

Speed: by default the detector runs a BatchNorm-folded copy of its network
(:func:`featherface.fuse.fuse_for_inference`), in channels-last memory layout on CPU; ``fuse=False``
runs ``detector.network`` itself. ``backend="onnxruntime"`` runs the network with ONNX Runtime
instead (:mod:`featherface.backends`); pre- and post-processing are the same code for every backend.
The fused copy is made once, when the detector is created: later changes to ``detector.network``'s
weights are not seen by ``detect`` (create a new detector, or use ``fuse=False``, whose detector runs
``network`` itself; then do not call ``network.train()`` or change its weights while other threads
are detecting).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from featherface.config import ModelConfig
from featherface.io import ColorOrder, ImageInput, load_image
from featherface.postprocess import PostprocessOptions, RawDetections, postprocess
from featherface.priors import priors_like
from featherface.types import Detection

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "v2_ultra"


def _is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


OPTION_TYPES: dict[str, str] = {
    "score_threshold": "a number in [0, 1]",
    "iou_threshold": "a number in [0, 1]",
    "pre_nms_top_k": "a positive int or None",
    "max_detections": "a positive int or None",
    "input_size": "None, a positive int or (height, width) of positive ints",
    "max_size": "a positive int or None",
    "max_input_pixels": "a positive int",
    "legacy_nms": "True or False",
}
"""What each :class:`DetectorOptions` field takes, as error messages say it."""


def _option_error(kind: type[Exception], name: str, value: Any) -> Exception:
    """``kind("detector option NAME takes WHAT; got VALUE (TYPE)")``, with a hint for strings."""
    hint = ""
    if isinstance(value, str):
        hint = "; pass the value itself, not a string (e.g. float(text) or int(text) first)"
    return kind(f"detector option {name} takes {OPTION_TYPES[name]}; got {value!r} ({type(value).__name__}){hint}")


def _validate_option(name: str, value: Any) -> Any:
    """Check one option's type (``TypeError``) and value (``ValueError``); return it normalised
    (NumPy scalars to Python numbers, a list ``input_size`` to a tuple)."""
    if name in ("score_threshold", "iou_threshold"):
        if not _is_real(value):
            raise _option_error(TypeError, name, value)
        if not 0.0 <= float(value) <= 1.0:
            raise _option_error(ValueError, name, value)
        return float(value)
    if name in ("pre_nms_top_k", "max_detections", "max_size", "max_input_pixels"):
        if value is None and name != "max_input_pixels":
            return None
        if not _is_int(value):
            raise _option_error(TypeError, name, value)
        if value <= 0:
            raise _option_error(ValueError, name, value)
        return int(value)
    if name == "input_size":
        if value is None:
            return None
        if _is_int(value):
            if value <= 0:
                raise _option_error(ValueError, name, value)
            return int(value)
        if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(_is_int(v) for v in value):
            raise _option_error(TypeError, name, value)
        if not all(v > 0 for v in value):
            raise _option_error(ValueError, name, value)
        return (int(value[0]), int(value[1]))
    if name == "legacy_nms":
        if not isinstance(value, (bool, np.bool_)):
            raise _option_error(TypeError, name, value)
        return bool(value)
    raise TypeError(f"unknown detector option {name!r}; valid options: {sorted(OPTION_TYPES)}")


@dataclass(frozen=True)
class DetectorOptions:
    """Detection options; the same names are accepted by ``load_model`` and every ``detect`` call.

    Each option is checked when the options are made: a value of the wrong type raises ``TypeError``
    and a value out of range ``ValueError``, both naming the option, the value given and what the
    option takes (:data:`OPTION_TYPES`). NumPy scalars are accepted and stored as Python numbers.

    Attributes:
        score_threshold: keep faces with score strictly above this (default 0.5).
        iou_threshold: NMS IoU threshold (default 0.4).
        pre_nms_top_k: best candidates kept before NMS (``None``: all).
        max_detections: faces returned at most, best first (``None``: all).
        input_size: ``None`` runs at the original size; an ``int`` scales the image (up or down,
            aspect kept) so its longer side equals it; ``(height, width)`` resizes to exactly that.
        max_size: if the (scaled) longer side exceeds this, downscale to it (aspect kept).
        max_input_pixels: refuse network inputs above this many pixels instead of exhausting memory
            (set ``max_size`` to process huge images at reduced resolution).
        legacy_nms: the "+1 pixel" NMS convention of the reference evaluation code.
    """

    score_threshold: float = 0.5
    iou_threshold: float = 0.4
    pre_nms_top_k: int | None = 5000
    max_detections: int | None = 750
    input_size: int | tuple[int, int] | None = None
    max_size: int | None = None
    max_input_pixels: int = 40_000_000
    legacy_nms: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _validate_option(f.name, getattr(self, f.name)))

    def updated(self, **overrides: Any) -> DetectorOptions:
        """Copy with some options changed; unknown names raise ``TypeError`` listing the valid ones."""
        if not overrides:
            return self
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise TypeError(f"unknown detector option(s) {unknown}; valid options: {sorted(valid)}")
        return dataclasses.replace(self, **overrides)

    def postprocess_options(self) -> PostprocessOptions:
        return PostprocessOptions(
            score_threshold=self.score_threshold,
            iou_threshold=self.iou_threshold,
            pre_nms_top_k=self.pre_nms_top_k,
            max_detections=self.max_detections,
            legacy_plus_one=self.legacy_nms,
        )

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input ``(h, w)`` for an original image of ``height x width`` pixels."""
        h, w = height, width
        s = self.input_size
        if isinstance(s, tuple):
            h, w = s
        elif isinstance(s, int):
            f = s / max(h, w)
            h, w = max(1, round(h * f)), max(1, round(w * f))
        if self.max_size is not None and max(h, w) > self.max_size:
            f = self.max_size / max(h, w)
            h, w = max(1, round(h * f)), max(1, round(w * f))
        if h * w > self.max_input_pixels:
            raise ValueError(
                f"image of {width}x{height} pixels would need a {w}x{h} network input, above the "
                f"max_input_pixels={self.max_input_pixels} memory cap; pass max_size=... (e.g. "
                f"{int(math.sqrt(self.max_input_pixels))}) to detect at reduced resolution, or raise the cap"
            )
        return h, w


def _tensor_view(array: np.ndarray) -> torch.Tensor:
    """A tensor of ``array``'s values for reading only: its memory where torch can view it, else a copy."""
    if any(stride < 0 for stride in array.strides):  # e.g. a flipped image: torch has no negative strides
        return torch.from_numpy(np.ascontiguousarray(array))
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():  # torch warns that writes through the view would be undefined
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def default_device() -> torch.device:
    """CUDA when available, else the CPU (what ``device=None`` means)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DeviceError(ValueError):
    """A device name that is invalid, or a device that this machine does not have."""


def _parse_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"invalid device {str(device)!r}: expected 'cpu', 'cuda', 'cuda:N' or 'mps' (device= in "
                          "Python, --device on the command line)") from None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The ``torch.device`` for ``device`` (``None``: :func:`default_device`), checked to exist here.

    The one device check of the package: :func:`load_model`, :class:`FaceDetector` and the command
    line's ``--device`` all go through it, so they report an unusable device with the same message.

    Raises:
        DeviceError: (a ``ValueError``) an invalid name, or CUDA / MPS requested on a machine (or a
            torch build) without it, or a CUDA index this machine does not have.
    """
    if device is None:
        return default_device()
    dev = _parse_device(device)
    fallback = "use device 'cpu' instead (device='cpu' or device=None in Python, --device cpu or no --device on the command line)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else f"torch {torch.__version__} found no usable GPU or driver")
            raise DeviceError(f"device {str(device)!r}: CUDA is not available on this machine ({why}); {fallback}")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"device {str(device)!r}: this machine has {count} CUDA device(s) "
                              f"(cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device {str(device)!r}: MPS (Apple GPU) is not available on this machine; {fallback}")
    return dev


class FaceDetector:
    """A face detector: network + weights + detection options.

    Create it with :func:`featherface.load_model`. ``detect`` returns a list of :class:`Detection`
    with boxes and landmarks in original-image pixels. The keywords ``backend``, ``fuse``,
    ``channels_last``, ``num_threads`` and ``onnx_path`` mean what they mean for ``load_model``.

    Attributes:
        network: the network as loaded (eval mode, BatchNorms not folded): use it to read or save
            the weights. With ``fuse=True`` (default) ``detect`` runs a folded copy made when the
            detector was created, so later changes to ``network`` are not seen by ``detect``.
        runner: the engine that runs the network (:mod:`featherface.backends`): a ``TorchRunner``
            (``runner.module`` is the module actually run) or an ``OnnxRuntimeRunner``
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
    ) -> None:
        from featherface.backends import BACKENDS

        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads <= 0:
                raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        if onnx_path is not None and backend != "onnxruntime":
            raise ValueError("onnx_path= is only used with backend='onnxruntime'")
        if backend == "onnxruntime":
            if device is not None and _parse_device(device).type != "cpu":
                raise ValueError(f"the onnxruntime backend runs on the CPU; got device={str(device)!r}")
            device = "cpu"
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.config = config
        self.options = options or DetectorOptions()
        self.weights_source = weights_source
        self.num_threads = num_threads
        self._mean = torch.tensor(config.mean_bgr, dtype=torch.float32).view(3, 1, 1)
        self._mean_values = np.asarray(config.mean_bgr, dtype=np.float32)
        if num_threads is not None:
            torch.set_num_threads(num_threads)  # process-wide
        self.runner = self._make_runner(backend, fuse, channels_last, num_threads, onnx_path)
        self._channels_last = bool(getattr(self.runner, "channels_last", False))

    def _make_runner(self, backend: str, fuse: bool, channels_last: bool | None, num_threads: int | None,
                     onnx_path: str | os.PathLike | None) -> Any:
        from featherface.backends import TorchRunner, onnxruntime_runner_for
        from featherface.fuse import fuse_for_inference

        if backend == "onnxruntime":
            return onnxruntime_runner_for(self.network, self.config, onnx_path=onnx_path,
                                          cache=self.weights_source != "random", num_threads=num_threads)
        module = fuse_for_inference(self.network) if fuse else self.network
        if channels_last is None:  # measured faster for both networks on CPU (docs/deployment.md)
            channels_last = fuse and self.device.type == "cpu"
        if channels_last:  # with fuse=False this converts ``network`` itself (same parameters)
            module = module.to(memory_format=torch.channels_last)
        return TorchRunner(module, self.device, channels_last=channels_last)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def backend(self) -> str:
        """The inference engine in use: ``"torch"`` or ``"onnxruntime"``."""
        return self.runner.name

    def __repr__(self) -> str:
        return (
            f"FaceDetector(model={self.name!r}, backend={self.backend!r}, device={str(self.device)!r}, "
            f"weights={self.weights_source!r})"
        )

    # -- preprocessing ---------------------------------------------------------------------------
    def _prepare(self, image: ImageInput, color: ColorOrder, opts: DetectorOptions) -> tuple[np.ndarray, tuple[int, int]]:
        """Load one image and resize it for the network; returns (BGR HxWx3 array, original (H, W))."""
        import cv2

        img = load_image(image, color=color)
        height, width = img.shape[:2]
        h, w = opts.network_size(height, width)
        if (h, w) != (height, width):
            interp = cv2.INTER_AREA if h * w < height * width else cv2.INTER_LINEAR
            img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=interp)
        return img, (height, width)

    def _to_tensor(self, imgs: Sequence[np.ndarray]) -> torch.Tensor:
        """Stack same-size BGR HxWx3 arrays into ``[B, 3, H, W]`` float32, mean subtracted.

        One output allocation in the runner's memory layout (channels-last for the torch CPU runner,
        NCHW otherwise), filled by a cast-and-transpose copy per channel, and an in-place mean
        subtraction. The input arrays are only read.
        """
        h, w = imgs[0].shape[:2]
        if self.runner.name != "torch":
            # Another engine runs the network: fill the batch with numpy (single-threaded), so that
            # torch's OpenMP workers do not spin-wait after a parallel copy and compete with that
            # engine's threads for the cores (measured: ONNX Runtime network time +15-20%).
            arr = np.empty((len(imgs), 3, h, w), dtype=np.float32)
            for i, img in enumerate(imgs):
                for c in range(3):
                    plane = arr[i, c]
                    plane[...] = img[:, :, c]
                    plane -= self._mean_values[c]
            return torch.from_numpy(arr)
        fmt = torch.channels_last if self._channels_last else torch.contiguous_format
        out = torch.empty((len(imgs), 3, h, w), dtype=torch.float32, memory_format=fmt)
        for i, img in enumerate(imgs):
            for c in range(3):  # a channel slice has non-negative strides even for an RGB->BGR view
                out[i, c].copy_(_tensor_view(img[:, :, c]))
        out.sub_(self._mean)
        return out if self.device.type == "cpu" else out.to(self.device, non_blocking=True)

    # -- inference -------------------------------------------------------------------------------
    def forward_raw(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the network on a prepared ``[B, 3, H, W]`` tensor; raw ``(loc, logits, landmarks)``.

        ``batch`` is float32 BGR with the mean subtracted, any memory layout; the call goes to the
        detector's backend (``detector.runner``).
        """
        return self.runner(batch)

    def _decode(
        self, raw: tuple[torch.Tensor, torch.Tensor, torch.Tensor], size: tuple[int, int], opts: DetectorOptions
    ) -> list[RawDetections]:
        loc, logits, ldm = raw
        priors = priors_like(size, self.config.priors, loc)
        return postprocess(loc, logits, ldm, priors, self.config.priors.variances, size, opts.postprocess_options())

    @staticmethod
    def _to_detections(raw: RawDetections, net_size: tuple[int, int], orig: tuple[int, int]) -> list[Detection]:
        (h, w), (height, width) = net_size, orig
        sx, sy = width / w, height / h
        boxes = raw.boxes.detach().cpu().double().numpy()
        pts = raw.landmarks.detach().cpu().double().numpy().reshape(-1, 5, 2)
        scores = raw.scores.detach().cpu().double().numpy()
        boxes[:, 0::2] = np.clip(boxes[:, 0::2] * sx, 0.0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2] * sy, 0.0, height)
        pts[..., 0] *= sx
        pts[..., 1] *= sy
        return [
            Detection(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                score=float(s),
                landmarks=tuple((float(x), float(y)) for x, y in p),  # type: ignore[arg-type]
            )
            for b, s, p in zip(boxes, scores, pts)
        ]

    def detect(self, image: ImageInput, *, color: ColorOrder = "rgb", **options: Any) -> list[Detection]:
        """Detect faces in one image.

        Args:
            image: path, encoded bytes, numpy array (``H x W x 3``/``x4``, ``H x W``, uint8 or float in
                ``[0, 1]``), PIL image or torch tensor ``3 x H x W``; see :mod:`featherface.io`.
            color: channel order of numpy arrays and tensors: ``"rgb"`` (default) or ``"bgr"``
                (OpenCV frames). Ignored for files, bytes and PIL images.
            **options: per-call overrides of :class:`DetectorOptions` (e.g. ``score_threshold=0.7``).

        Returns:
            Faces sorted by descending score; boxes and landmarks in original-image pixels.
        """
        if type(image).__module__.startswith("torch") and getattr(image, "ndim", 0) == 4 and image.shape[0] != 1:
            raise ValueError(f"detect() takes one image; got a batch tensor of shape {tuple(image.shape)}, use detect_batch")
        return self.detect_batch([image], color=color, **options)[0]

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
        elif isinstance(images, (str, bytes, np.ndarray)) or not isinstance(images, Iterable):
            raise TypeError("detect_batch expects a list (or other iterable) of images")
        prepared = [self._prepare(img, color, opts) for img in images]
        results: list[list[Detection] | None] = [None] * len(prepared)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (img, _) in enumerate(prepared):
            groups.setdefault(img.shape[:2], []).append(i)
        for size, idx in groups.items():
            raw = self.forward_raw(self._to_tensor([prepared[i][0] for i in idx]))
            for i, det in zip(idx, self._decode(raw, size, opts)):
                results[i] = self._to_detections(det, size, prepared[i][1])
        return [r if r is not None else [] for r in results]

    def detect_stream(
        self, inputs: Iterable[ImageInput], *, batch_size: int = 8, workers: int = 0, color: ColorOrder = "rgb",
        **options: Any,
    ) -> Iterator[tuple[Any, list[Detection] | Exception]]:
        """Detect faces in many images (a folder's files, a stream of frames): batched, with parallel
        decoding in ``workers`` processes; yields ``(item, detections)`` in input order, or
        ``(item, exception)`` for an input that could not be read (the stream goes on).

        Each result equals ``detect(item)``. See :func:`featherface.stream.detect_stream` for the
        batching rules and the other arguments.
        """
        from featherface.stream import detect_stream

        return detect_stream(self, inputs, batch_size=batch_size, workers=workers, color=color, **options)


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
    **options: Any,
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
            :mod:`featherface.backends`); detections are decoded by the same code as with torch.
            ``detector.backend`` tells which one runs.
        fuse: run a copy of the network with every BatchNorm folded into the preceding conv
            (same outputs to float32 rounding, faster). ``detector.network`` stays the unfused network.
        channels_last: channels-last memory layout for the torch backend; ``None`` (default): on
            for a fused network on CPU, where it is faster.
        num_threads: CPU threads for inference: calls ``torch.set_num_threads(num_threads)``, which is
            **process-wide** (it affects all torch code in the process), and sets the intra-op threads
            of the ONNX Runtime session. ``None`` leaves the current setting.
        onnx_path: with ``backend="onnxruntime"``: use this raw ONNX graph (exported there first if
            the file does not exist) instead of the cache.
        **options: :class:`DetectorOptions` defaults for this detector.

    Raises:
        ValueError: unknown model name or backend, an option value out of range, or a device this
            machine does not have (``featherface.api.DeviceError``, from :func:`resolve_device`).
        TypeError: an unknown option, or an option value of the wrong type (the message names the
            option, the value and what it takes).
        ImportError: ``backend="onnxruntime"`` without onnxruntime installed.
        featherface.hub.WeightsError: weights missing, corrupt or not matching (subclasses for hash
            or config mismatches).
    """
    from featherface.hub import load_weights_into, resolve_weights
    from featherface.models import create_network
    from featherface.registry import get_spec

    opts = DetectorOptions().updated(**options)
    if backend != "onnxruntime":  # checked before any weights are read (onnxruntime: by FaceDetector)
        device = resolve_device(device)
    engine: dict[str, Any] = {"backend": backend, "fuse": fuse, "channels_last": channels_last,
                              "num_threads": num_threads, "onnx_path": onnx_path}
    if backend == "onnxruntime":
        from featherface.backends import import_onnxruntime

        import_onnxruntime()  # before loading any weights
    if name is None and weights is None:
        name = DEFAULT_MODEL
    spec = get_spec(name) if name is not None else None
    if not pretrained:
        if weights is not None:
            raise ValueError("pretrained=False builds a random network; do not pass weights= with it")
        assert spec is not None
        return FaceDetector(create_network(spec.config), spec.config, device=device, options=opts, **engine)
    resolved = resolve_weights(spec, weights=weights, revision=revision, cache_dir=cache_dir, sha256=sha256,
                               local_files_only=local_files_only)
    network = create_network(resolved.config)
    load_weights_into(network, resolved.model_file)
    logger.info("featherface: loaded %s weights from %s (%s)", resolved.config.name, resolved.model_file, resolved.source)
    return FaceDetector(network, resolved.config, device=device, options=opts, weights_source=resolved.source,
                        **engine)
