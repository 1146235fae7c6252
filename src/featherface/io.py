"""Image loading: the one place where any accepted input becomes an ``H x W x 3`` BGR array.

Accepted inputs (see :func:`load_image`):

* ``str`` / ``pathlib.Path``: an image file (JPEG, PNG, BMP, WebP, TIFF...); EXIF orientation applied.
* ``bytes`` / ``bytearray`` / ``memoryview``: an encoded image file; EXIF orientation applied.
* ``numpy.ndarray``: ``H x W x 3`` (colour order given by ``color``), ``H x W x 4`` (alpha dropped),
  ``H x W`` or ``H x W x 1`` (grayscale); ``uint8`` in 0..255, ``uint16`` in 0..65535 or float in
  ``[0, 1]``.
* ``PIL.Image.Image`` (when Pillow is installed; it is not a dependency): every mode, see below.
* ``torch.Tensor``: ``3 x H x W`` (or ``1 x 3 x H x W``), ``uint8`` or float in ``[0, 1]``, RGB unless
  ``color="bgr"``.

URLs (``"https://..."``) are not fetched: :func:`load_image` refuses them with :class:`ImageError`
(download the image and pass its bytes or the saved file's path).

Intensity conventions, the same for every kind of input:

* 8-bit data is used as is.
* **16-bit data** (16-bit PNG or TIFF files, by path or bytes; ``uint16`` arrays; PIL modes ``I;16``,
  ``I;16L``, ``I;16B``, ``I;16N`` and ``I``) keeps its high byte: ``v >> 8`` (``v // 256``), the
  reduction that both Pillow (for 48-bit RGB files) and OpenCV (for 16-bit PNG files) apply. One
  file therefore gives the same pixels by path, by bytes, as ``np.asarray(PIL.Image.open(f))`` and
  as a PIL image. PIL mode ``I`` (32-bit integers) is read as 16-bit data, as Pillow gives it for
  16-bit files; values outside 0..65535 are refused (:class:`ImageError` naming the mode).
* **Float data** (float arrays and tensors, PIL mode ``F``) must lie in ``[0, 1]`` and is scaled by
  255; other values are refused with an :class:`ImageError`.
* Every other PIL mode (``1``, ``LA``, ``P``, ``PA``, ``CMYK``, ``YCbCr``, ...) is converted with
  Pillow's own ``image.convert("RGB")``; ``RGB``, ``RGBA`` (alpha dropped, as ``convert("RGB")``
  does) and ``L`` are read directly. A mode Pillow cannot convert to RGB is refused with an
  :class:`ImageError` naming it.

The caller's data is never modified: every path returns a new array or a read-only view.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from featherface.errors import ImageError

__all__ = ["load_image", "read_image_file", "ImageError", "ColorOrder", "ImageInput", "is_url", "reject_url"]

ColorOrder = Literal["rgb", "bgr"]
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Any]  # noqa: UP007 (a runtime alias)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(text: str) -> bool:
    """Whether ``text`` looks like a URL (``scheme://...``) rather than a file path."""
    return bool(_URL.match(text))


def reject_url(text: str) -> None:
    """Raise :class:`ImageError` if ``text`` is a URL: featherface reads local data only.

    Used by :func:`load_image` and by ``featherface detect``, so both say the same thing.
    """
    if is_url(text):
        raise ImageError(
            f"{text} is a URL; featherface does not download images. Download it yourself and pass the "
            "bytes (e.g. urllib.request.urlopen(url).read()) or the path of the saved file"
        )


def _cv2() -> Any:
    import cv2  # imported lazily: ``import featherface`` stays cheap

    return cv2


def _decode(data: bytes | bytearray | memoryview, what: str) -> np.ndarray:
    """Decode an encoded image to ``H x W x 3`` uint8 BGR (EXIF orientation applied).

    16-bit files are decoded at full depth and reduced by :func:`_from_array` (``v >> 8``), the one
    16-bit convention of this module: OpenCV's own reduction differs between formats (it rounds
    ``v / 257`` for 16-bit RGB TIFF files, keeps the high byte for PNG).
    """
    cv2 = _cv2()
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError(f"{what}: empty data")
    # IMREAD_COLOR applies the EXIF orientation tag (cv2.IMREAD_IGNORE_ORIENTATION is not set);
    # IMREAD_ANYDEPTH keeps 16-bit samples instead of letting the codec reduce them.
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if img is not None and img.dtype == np.uint16:
        return _from_array(img, "bgr", what)
    if img is None or img.dtype != np.uint8:  # e.g. float formats: the codec's own 8-bit rendering
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{what}: not a decodable image (unknown format or corrupt data)")
    return img


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 BGR with EXIF orientation applied.

    16-bit files are reduced with ``v >> 8`` (see the module docstring). A URL string is refused
    with :class:`ImageError` (:func:`reject_url`).
    """
    if isinstance(path, str):
        reject_url(path)
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
    elif arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # uint16, any byte order: keep the high byte
        out = (arr >> 8).astype(np.uint8)
    elif arr.dtype in (np.float16, np.float32, np.float64):
        out = _from_float(arr, what)
    elif arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ImageError(f"{what}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    else:
        raise ImageError(
            f"{what}: unsupported dtype {arr.dtype}; convert to uint8 (0..255), uint16 (0..65535) or "
            "float in [0, 1]"
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


_PIL_DIRECT_MODES = ("RGB", "RGBA", "L")
"""PIL modes whose pixels are read as they are (RGBA: alpha dropped, as ``convert("RGB")`` does)."""


def _from_pil(pil: Any) -> np.ndarray:
    """A PIL image as BGR, following the conventions of the module docstring for every mode."""
    mode = str(pil.mode)
    what = f"PIL image (mode {mode!r})"
    if mode in _PIL_DIRECT_MODES:
        return _from_array(np.asarray(pil), "rgb", what)
    if mode.startswith("I;16"):  # I;16, I;16L, I;16B, I;16N: 16-bit greyscale
        return _from_array(np.asarray(pil).astype(np.uint16), "rgb", what)
    if mode == "I":  # 32-bit integers: how Pillow represents 16-bit files in some versions/formats
        arr = np.asarray(pil)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 0xFFFF:
            raise ImageError(
                f"{what}: values in [{lo}, {hi}]; mode 'I' is read as 16-bit data (0..65535). Scale it "
                "to 0..65535, or convert it to 'L' or 'RGB' yourself"
            )
        return _from_array(arr.astype(np.uint16), "rgb", what)
    if mode == "F":  # float: the float-array convention, values in [0, 1]
        return _from_array(np.asarray(pil), "rgb", what)
    try:
        rgb = pil.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(
            f"{what}: Pillow cannot convert this mode to RGB ({exc}); convert the image to 'RGB' yourself"
        ) from None
    return _from_array(np.asarray(rgb), "rgb", what)


def load_image(image: ImageInput, *, color: ColorOrder = "rgb") -> np.ndarray:
    """Turn any accepted input into an ``H x W x 3`` BGR array (uint8, or float32 in 0..255).

    Args:
        image: see the module docstring for the accepted types.
        color: channel order of numpy arrays and tensors (``"rgb"`` by default; pass ``"bgr"`` for
            OpenCV frames). Files, bytes and PIL images carry their own order and ignore it.

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageError: (a ``ValueError``) anything that is not a usable image, with the reason; also a
            URL string (not fetched: pass the downloaded bytes or file instead).
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
        return _from_pil(image)
    raise TypeError(
        f"unsupported image type {type(image).__name__}; pass a path, bytes, numpy array, "
        "PIL image or torch tensor"
    )
