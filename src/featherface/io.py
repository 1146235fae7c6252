"""Image loading: the one place where any accepted input becomes an ``H x W x 3`` BGR array.

Accepted inputs (see :func:`load_image`):

* ``str`` / ``pathlib.Path``: an image file (JPEG, PNG, BMP, WebP, TIFF...); EXIF orientation applied.
* ``bytes`` / ``bytearray`` / ``memoryview``: an encoded image file; EXIF orientation applied.
* a binary file object (anything with a ``read()`` that returns bytes: ``open(path, "rb")``,
  ``io.BytesIO``, an HTTP response...): read **from its current position** to its end with one
  ``read()`` call, then decoded as bytes (EXIF orientation applied). Nothing else is done to it: it is
  neither rewound nor closed, so after the call it stands at its end. A text-mode file, or a ``read()``
  returning ``str``, raises ``TypeError``.
* ``numpy.ndarray``: ``H x W x 3`` (colour order given by ``color``), ``H x W x 4`` (alpha dropped),
  ``H x W`` or ``H x W x 1`` (grayscale); ``uint8`` in 0..255, ``uint16`` in 0..65535 or float in
  ``[0, 1]``.
* ``PIL.Image.Image`` (when Pillow is installed; it is not a dependency): every mode, see below;
  an EXIF orientation tag is applied as ``PIL.ImageOps.exif_transpose`` does (the caller's image is
  not changed), so a file gives the same pixels by path, by bytes and as ``PIL.Image.open(path)``.
* ``torch.Tensor``: ``3 x H x W`` (or ``1 x 3 x H x W``), ``uint8`` or float in ``[0, 1]``, RGB unless
  ``color="bgr"``.

URLs (``"https://..."``) are not fetched: :func:`load_image` refuses them with :class:`ImageError`
(download the image and pass its bytes or the saved file's path).

Intensity conventions, the same for every kind of input:

* 8-bit data is used as is.
* **16-bit data** (16-bit PNG or TIFF files, by path or bytes; ``uint16`` arrays and tensors; PIL
  modes ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` and ``I``) keeps its high byte: ``v >> 8``
  (``v // 256``), the reduction that both Pillow (for 48-bit RGB files) and OpenCV (for 16-bit PNG
  files) apply. One file therefore gives the same pixels by path, by bytes, as
  ``np.asarray(PIL.Image.open(f))`` and as a PIL image. PIL mode ``I`` (32-bit integers) is read as
  16-bit data, as Pillow gives it for 16-bit files; values outside 0..65535 are refused
  (:class:`ImageError` naming the mode).
* **A uint16 array is always 16-bit data**, whatever its values: its dtype decides, never its range.
  A ``uint16`` array (or tensor) whose largest value is between 1 and 255 is almost certainly 8-bit
  data stored as ``uint16``, which the rule above turns into a black image (every ``v >> 8`` is 0)
  and no face is found; such an array is still read as 16-bit, and a ``UserWarning`` says so and how
  to pass 8-bit data (``arr.astype(np.uint8)``). An all-zero array reads the same either way and
  does not warn; 16-bit files and PIL images never warn (their depth is known).
* **Float data** (float arrays and tensors, PIL mode ``F``) must lie in ``[0, 1]`` and is scaled by
  255; other values are refused with an :class:`ImageError`.
* Every other PIL mode (``1``, ``LA``, ``P``, ``PA``, ``CMYK``, ``YCbCr``, ...) is converted with
  Pillow's own ``image.convert("RGB")``; ``RGB``, ``RGBA`` (alpha dropped, as ``convert("RGB")``
  does) and ``L`` are read directly. A mode Pillow cannot convert to RGB is refused with an
  :class:`ImageError` naming it.

The caller's data is never modified: every path returns a new array or a read-only view.
"""

from __future__ import annotations

import io
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np

from featherface.errors import ImageError

__all__ = ["load_image", "read_image_file", "ColorOrder", "ImageInput", "is_url", "reject_url",
           "is_file_object", "output_color"]

ColorOrder = Literal["rgb", "bgr"]
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Any]  # noqa: UP007 (a runtime alias)
"""Anything :func:`load_image` accepts (``Any`` stands for file objects, PIL images and torch tensors)."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(text: str) -> bool:
    """Whether ``text`` looks like a URL (``scheme://...``) rather than a file path."""
    return bool(_URL.match(text))


def is_file_object(obj: Any) -> bool:
    """Whether ``obj`` is read as a file object (it has a callable ``read``): ``open(path, "rb")``,
    ``io.BytesIO``... Used wherever one image must be told apart from an iterable of images."""
    return not isinstance(obj, (str, bytes, bytearray, memoryview, np.ndarray)) and callable(getattr(obj, "read", None))


def output_color(image: Any, color: ColorOrder) -> ColorOrder:
    """The colour order of an image that featherface returns for the input ``image``.

    The one rule of :func:`featherface.draw` and :func:`featherface.align`: numpy arrays and torch
    tensors come back in their own order (``color``); files, bytes, file objects and PIL images, which
    carry their own colour information, come back as RGB.
    """
    if isinstance(image, np.ndarray) or type(image).__module__.startswith("torch"):
        return color
    return "rgb"


def _warn_caller(message: str) -> None:
    """A ``UserWarning`` attributed to the first frame outside the featherface package (the caller's
    line that passed the image), whatever the depth of the library's own calls."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
        level += 1
    warnings.warn(message, UserWarning, stacklevel=level)


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


def _from_array(arr: np.ndarray, color: ColorOrder, what: str, *, check_8bit_in_16: bool = False) -> np.ndarray:
    """``arr`` as ``H x W x 3`` BGR. ``check_8bit_in_16``: warn about a ``uint16`` array whose values
    look like 8-bit data (user arrays and tensors; not decoded files or PIL images, whose depth is known)."""
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
        if check_8bit_in_16:
            hi = int(arr.max())
            if 0 < hi <= 255:
                _warn_caller(
                    f"{what}: uint16 data with values only in 0..{hi} looks like 8-bit data stored as uint16. "
                    "uint16 is read as 16-bit (0..65535, v >> 8), so this image is black (no face can be "
                    "found); pass 8-bit data as uint8: arr.astype(np.uint8)"
                )
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
    return _from_array(arr, color, what, check_8bit_in_16=True)


_PIL_DIRECT_MODES = ("RGB", "RGBA", "L")
"""PIL modes whose pixels are read as they are (RGBA: alpha dropped, as ``convert("RGB")`` does)."""


_EXIF_ORIENTATION = 0x0112


def _exif_oriented(pil: Any) -> Any:
    """``pil`` with its EXIF orientation applied, as ``PIL.ImageOps.exif_transpose`` does (a new image;
    ``pil`` itself is not changed). ``pil`` itself when it has no orientation tag to apply."""
    orientation = pil.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation in (None, 1):  # the common case: no transposed copy
        return pil
    from PIL import ImageOps  # only reached for a PIL image: Pillow is installed

    return ImageOps.exif_transpose(pil)


def _from_pil(pil: Any) -> np.ndarray:
    """A PIL image as BGR, following the conventions of the module docstring for every mode."""
    pil = _exif_oriented(pil)
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


def _read_file_object(f: Any) -> bytes | bytearray | memoryview:
    """All bytes from ``f``'s current position (one ``read()`` call; ``f`` is neither rewound nor closed)."""
    name = type(f).__name__
    if isinstance(f, io.TextIOBase):  # refused before reading: nothing is consumed
        raise TypeError(f"image file object ({name}) is open in text mode; open the file in binary mode "
                        "(open(path, 'rb')) or pass its path")
    data = f.read()
    if isinstance(data, str):
        raise TypeError(f"image file object ({name}): read() returned str, not bytes; open the file in "
                        "binary mode (open(path, 'rb')) or pass io.BytesIO(data)")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image file object ({name}): read() returned {type(data).__name__}, not bytes")
    if len(data) == 0:
        raise ImageError(f"image file object ({name}): no bytes left to read. It is read from its current "
                         "position: if it was read before, call seek(0) first")
    return data


def load_image(image: ImageInput, *, color: ColorOrder = "rgb") -> np.ndarray:
    """Turn any accepted input into an ``H x W x 3`` BGR array (uint8, or float32 in 0..255).

    Args:
        image: see the module docstring for the accepted types.
        color: channel order of numpy arrays and tensors (``"rgb"`` by default; pass ``"bgr"`` for
            OpenCV frames). Files, bytes, file objects and PIL images carry their own order and ignore it.

    Warns:
        UserWarning: a ``uint16`` array or tensor whose values all lie in 1..255 (8-bit data stored
            as uint16; it is read as 16-bit, see the module docstring).

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageError: (a ``ValueError``) anything that is not a usable image, with the reason; also a
            URL string (not fetched: pass the downloaded bytes or file instead), and a file object
            with no bytes left to read.
        TypeError: an unsupported input type, a text-mode file or a ``read()`` that returns ``str``.
    """
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(image, "image bytes")
    if isinstance(image, np.ndarray):
        return _from_array(image, color, "image array", check_8bit_in_16=True)
    mod = type(image).__module__
    if mod.startswith("torch"):
        return _from_tensor(image, color, "image tensor")
    if mod.startswith("PIL."):
        return _from_pil(image)
    if is_file_object(image):
        return _decode(_read_file_object(image), f"image file object ({type(image).__name__})")
    raise TypeError(
        f"unsupported image type {type(image).__name__}; pass a path, bytes, a binary file object, "
        "numpy array, PIL image or torch tensor"
    )
