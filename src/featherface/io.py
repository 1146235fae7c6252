"""Image loading: the one place where any accepted input becomes an ``H x W x 3`` BGR array.

Accepted inputs (see :func:`load_image`):

* ``str`` / ``pathlib.Path``: an image file (JPEG, PNG, BMP, WebP, TIFF...); EXIF orientation applied.
* ``bytes`` / ``bytearray`` / ``memoryview``: an encoded image file; EXIF orientation applied.
* ``numpy.ndarray``: ``H x W x 3`` (colour order given by ``color``), ``H x W x 4`` (alpha dropped),
  ``H x W`` or ``H x W x 1`` (grayscale); ``uint8`` in 0..255 or float in ``[0, 1]``.
* ``PIL.Image.Image`` (when Pillow is installed; it is not a dependency): always RGB(A)/L by mode.
* ``torch.Tensor``: ``3 x H x W`` (or ``1 x 3 x H x W``), ``uint8`` or float in ``[0, 1]``, RGB unless
  ``color="bgr"``.

The caller's data is never modified: every path returns a new array or a read-only view.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

ColorOrder = Literal["rgb", "bgr"]
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Any]  # noqa: UP007 (a runtime alias)

MAX_DECODE_PIXELS = 1 << 28
"""Refuse to decode files larger than this many pixels (268 M) before allocating them."""


class ImageError(ValueError):
    """An input could not be turned into an image; the message names the problem."""


def _cv2() -> Any:
    import cv2  # imported lazily: ``import featherface`` stays cheap

    return cv2


def _decode(data: bytes | bytearray | memoryview, what: str) -> np.ndarray:
    cv2 = _cv2()
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError(f"{what}: empty data")
    # IMREAD_COLOR applies the EXIF orientation tag (cv2.IMREAD_IGNORE_ORIENTATION is not set)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{what}: not a decodable image (unknown format or corrupt data)")
    return img


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 BGR with EXIF orientation applied."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if p.is_dir():
        raise ImageError(f"{p} is a directory, not an image file")
    try:
        data = p.read_bytes()  # works for non-ASCII paths on every platform
    except OSError as exc:
        raise ImageError(f"cannot read image file {p}: {exc}") from exc
    return _decode(data, str(p))


def _from_float(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise ImageError(f"{what}: float image contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-6 or hi > 1.0 + 1e-6:
        raise ImageError(
            f"{what}: float images must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(pass uint8 for 0..255 data)"
        )
    return np.clip(arr.astype(np.float32) * 255.0, 0.0, 255.0)


def _from_array(arr: np.ndarray, color: ColorOrder, what: str) -> np.ndarray:
    if arr.size == 0 or 0 in arr.shape:
        raise ImageError(f"{what}: empty image with shape {arr.shape}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ImageError(f"{what}: expected H x W, H x W x 1, H x W x 3 or H x W x 4, got shape {arr.shape}")
    if arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"{what}: expected 1, 3 or 4 channels in the last axis, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype in (np.float16, np.float32, np.float64):
        out = _from_float(arr, what)
    elif arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ImageError(f"{what}: unsupported dtype {arr.dtype} (use uint8 or float in [0, 1])")
    else:
        raise ImageError(
            f"{what}: unsupported dtype {arr.dtype}; convert to uint8 (0..255) or float in [0, 1]"
        )
    c = out.shape[2]
    if c == 1:
        out = np.repeat(out, 3, axis=2)
    elif c == 4:
        out = out[:, :, :3]
    if c != 1 and color == "rgb":
        out = out[:, :, ::-1]
    elif color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if np.may_share_memory(out, arr):  # read-only view: nothing downstream can write into the caller's array
        out = out.view()
        out.flags.writeable = False
    return out


def _from_tensor(t: Any, color: ColorOrder, what: str) -> np.ndarray:
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ImageError(f"{what}: a batch tensor of shape {tuple(t.shape)}; use detect_batch")
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ImageError(f"{what}: expected a 3 x H x W or 1 x H x W tensor, got shape {tuple(t.shape)}")
    arr = t.detach().cpu().permute(1, 2, 0).numpy()
    return _from_array(arr, color, what)


def load_image(image: ImageInput, *, color: ColorOrder = "rgb") -> np.ndarray:
    """Turn any accepted input into an ``H x W x 3`` BGR array (uint8, or float32 in 0..255).

    Args:
        image: see the module docstring for the accepted types.
        color: channel order of numpy arrays and tensors (``"rgb"`` by default; pass ``"bgr"`` for
            OpenCV frames). Files, bytes and PIL images carry their own order and ignore it.

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageError: (a ``ValueError``) anything that is not a usable image, with the reason.
        TypeError: an unsupported input type.
    """
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(image, "image bytes")
    if isinstance(image, np.ndarray):
        return _from_array(image, color, "image array")
    mod = type(image).__module__
    if mod.startswith("torch"):
        return _from_tensor(image, color, "image tensor")
    if mod.startswith("PIL."):
        pil = image
        if pil.mode not in ("RGB", "RGBA", "L"):
            pil = pil.convert("RGB")
        return _from_array(np.asarray(pil), "rgb", "PIL image")
    raise TypeError(
        f"unsupported image type {type(image).__name__}; pass a path, bytes, numpy array, "
        "PIL image or torch tensor"
    )
