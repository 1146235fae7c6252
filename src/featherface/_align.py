"""Face alignment: warp a face onto the standard 5-point ArcFace template (:func:`align`, :func:`align_faces`).

The transform is a **similarity** (rotation, uniform scale, translation; no shear, no reflection)
fitted by least squares to the five landmarks with the closed-form solution of Umeyama (1991), the
estimate that face-recognition pipelines use for this template. It maps the five landmarks as
close as possible (in the least-squares sense) onto the template; the face is then resampled with
bilinear interpolation and pixels that fall outside the source image are black.

Coordinates follow :class:`featherface.Detection`: continuous pixel coordinates, the top-left
corner of the image is ``(0, 0)`` and pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``
(its centre is ``(j + 0.5, i + 0.5)``). The template points are in the same convention, in the
output crop. (Pipelines that pass landmarks straight to ``cv2.warpAffine`` treat pixel centres as
integers; the two differ by less than half a pixel and only where the scale is not 1.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from featherface.detection import Detection
from featherface.io import ColorOrder, ImageInput, load_image, output_color

__all__ = ["align", "align_faces", "ARCFACE_TEMPLATE_112", "template", "similarity_transform"]

ARCFACE_TEMPLATE_112: np.ndarray = np.array(
    [
        [38.2946, 51.6963],  # left eye (image left)
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float64,
)
"""The 5-point ArcFace template for a 112 x 112 crop, ``[5, 2]`` ``(x, y)`` in the order of
:data:`featherface.detection.LANDMARK_NAMES`. Read-only."""
ARCFACE_TEMPLATE_112.flags.writeable = False

FaceLandmarks = Union[Detection, np.ndarray, Sequence[Sequence[float]]]  # noqa: UP007 (a runtime alias)
"""A :class:`Detection` or its five ``(x, y)`` landmarks (a ``5 x 2`` array-like)."""

Size = Union[int, tuple[int, int]]  # noqa: UP007 (a runtime alias)
"""Output size: ``n`` for ``n x n`` or ``(height, width)``."""


def _check_size(size: Any) -> tuple[int, int]:
    """``(height, width)`` from ``size`` (a positive int, or a pair of them)."""

    def positive_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v > 0

    if positive_int(size):
        return int(size), int(size)
    if isinstance(size, tuple) and len(size) == 2 and all(positive_int(v) for v in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"size must be a positive int or a (height, width) tuple of positive ints, got {size!r}")


def template(size: Size = 112) -> np.ndarray:
    """The ArcFace template for an output of ``size``: ``[5, 2]`` float64 ``(x, y)`` in output pixels.

    ``size=n``: the 112 x 112 template scaled by ``n / 112``. ``size=(h, w)``: scaled by
    ``min(h, w) / 112`` (the face keeps its proportions) and centred in the ``h x w`` crop.

    Raises:
        ValueError: ``size`` is not a positive int or a ``(height, width)`` pair of them.
    """
    h, w = _check_size(size)
    s = min(h, w) / 112.0
    offset = np.array([(w - 112.0 * s) / 2.0, (h - 112.0 * s) / 2.0])
    return ARCFACE_TEMPLATE_112 * s + offset


def _landmarks(face: Any) -> np.ndarray:
    """The five landmarks of ``face`` as a new ``[5, 2]`` float64 array, checked."""
    if isinstance(face, Detection):
        face = face.landmarks
    if face is None or isinstance(face, (str, bytes, dict)):
        raise TypeError(f"face must be a Detection or a 5 x 2 array of (x, y) landmarks, got {type(face).__name__}")
    try:
        pts = np.array(face, dtype=np.float64)  # a copy: the caller's data is never touched
    except (TypeError, ValueError):
        raise TypeError(f"face must be a Detection or a 5 x 2 array of (x, y) landmarks, got {type(face).__name__}") from None
    if pts.shape != (5, 2):
        hint = " (flat x0, y0, ..., x4, y4? use .reshape(5, 2))" if pts.shape == (10,) else ""
        raise ValueError(f"face landmarks must have shape (5, 2), got {pts.shape}{hint}")
    if not np.isfinite(pts).all():
        raise ValueError("face landmarks contain NaN or infinite values")
    return pts


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity that maps points ``src`` onto ``dst`` (Umeyama, no reflection).

    Args:
        src: ``[N, 2]`` points ``(x, y)``, N >= 2, not all equal.
        dst: ``[N, 2]`` target points.

    Returns:
        ``[2, 3]`` float64 matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.

    Raises:
        ValueError: shapes that differ or are not ``[N, 2]``, or ``src`` points that all coincide.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"expected two [N, 2] point arrays of the same shape (N >= 2), got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c ** 2).sum() / len(src)
    if src_var <= 1e-12:
        raise ValueError("the landmarks all coincide: no transform can be estimated from them")
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # the best fit would be a reflection: take the best rotation
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((d * sign).sum() / src_var)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - m[:, :2] @ src_mean
    return m


def _warp(img: np.ndarray, pts: np.ndarray, tpl: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2  # imported lazily: ``import featherface`` stays cheap

    m = similarity_transform(pts, tpl)
    # m maps continuous coordinates (pixel centres at index + 0.5); OpenCV puts pixel centres at the
    # indices: dst_idx + 0.5 = A (src_idx + 0.5) + t, so its translation is t + A (0.5, 0.5) - 0.5
    m_cv = m.copy()
    m_cv[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    src = img if img.dtype == np.uint8 else img.astype(np.float32, copy=False)
    out = cv2.warpAffine(src, m_cv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if out.dtype != np.uint8:  # float input (0..255 after load_image)
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


def _bgr_and_order(image: ImageInput, color: ColorOrder) -> tuple[np.ndarray, bool]:
    img = load_image(image, color=color)  # BGR (uint8, or float32 in 0..255)
    return img, output_color(image, color) == "rgb"


def align(image: ImageInput, face: FaceLandmarks, size: Size = 112, *, color: ColorOrder = "rgb") -> np.ndarray:
    """The face warped onto the 5-point ArcFace template: a ``size x size`` crop for face recognition.

    A similarity transform (rotation, uniform scale, translation; never a reflection) is fitted by
    least squares to map the five landmarks onto the template, and the image is resampled through it
    (bilinear; pixels outside the image are black). The template for 112 x 112 is ``(x, y)`` = left
    eye (38.2946, 51.6963), right eye (73.5318, 51.5014), nose (56.0252, 71.7366), left mouth corner
    (41.5493, 92.3655), right mouth corner (70.7299, 92.2041); other sizes scale it (see ``size``).
    Landmarks and template are continuous pixel coordinates, as in :class:`Detection`: pixel
    ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``.

    >>> detector = featherface.load_model()                          # doctest: +SKIP
    >>> face = detector.detect("photo.jpg")[0]                        # doctest: +SKIP
    >>> crop = featherface.align("photo.jpg", face)  # 112 x 112 x 3, RGB  # doctest: +SKIP

    Args:
        image: anything :meth:`FaceDetector.detect` accepts (path, bytes, file object, array, PIL
            image, tensor), the image the landmarks refer to. Only read.
        face: a :class:`Detection`, or its five ``(x, y)`` landmarks as a ``5 x 2`` array-like in the
            order of :data:`featherface.detection.LANDMARK_NAMES` (image pixels).
        size: output size, ``n`` for ``n x n`` (the 112 template scaled by ``n / 112``) or
            ``(height, width)`` (template scaled by ``min(h, w) / 112``, centred).
        color: channel order of an array or tensor ``image``, as in ``detect``.

    Returns:
        ``H x W x 3`` uint8 array, in the colour order of ``featherface.draw``'s output
        (:func:`featherface.io.output_color`): the order of ``color`` for an array or tensor input
        (BGR in, BGR out), RGB for files, bytes, file objects and PIL images.

    Raises:
        ValueError: landmarks not of shape ``(5, 2)``, not finite or all equal; a ``size`` that is not
            a positive int or a pair of them.
        TypeError: ``face`` is neither a Detection nor numbers; an ``image`` of an unsupported type.
        featherface.errors.ImageError: (a ``ValueError``) an ``image`` that cannot be read, as for ``detect``.
        FileNotFoundError: an image path that does not exist.
    """
    h, w = _check_size(size)
    pts = _landmarks(face)
    img, out_rgb = _bgr_and_order(image, color)
    out = _warp(img, pts, template((h, w)), h, w)
    return np.ascontiguousarray(out[:, :, ::-1]) if out_rgb else out


def align_faces(
    image: ImageInput, faces: Sequence[FaceLandmarks] | np.ndarray, size: Size = 112, *, color: ColorOrder = "rgb"
) -> np.ndarray:
    """Every face of one image aligned as by :func:`align` (the image is read once).

    >>> faces = detector.detect(frame, color="bgr")                          # doctest: +SKIP
    >>> crops = featherface.align_faces(frame, faces, color="bgr")  # [N, 112, 112, 3] BGR  # doctest: +SKIP

    Args:
        image: the image the faces were detected in (anything ``detect`` accepts).
        faces: ``detector.detect(image)``'s list of :class:`Detection`, or landmarks as an
            ``[N, 5, 2]`` array-like (or a list of ``5 x 2`` ones).
        size: as for :func:`align`.
        color: as for :func:`align`.

    Returns:
        ``[N, H, W, 3]`` uint8 array, ``out[i]`` equal to ``align(image, faces[i], size)``, in the same
        colour order; ``N = 0`` gives shape ``(0, H, W, 3)``.

    Raises:
        ValueError: as for :func:`align`, the message naming the index of a bad face (``faces[i]: ...``);
            a single face's ``(5, 2)`` landmarks (use :func:`align`).
        TypeError: as for :func:`align`; a single :class:`Detection` (use :func:`align`).
    """
    h, w = _check_size(size)
    if isinstance(faces, Detection):
        raise TypeError("align_faces takes a list of faces; for one Detection use featherface.align")
    if isinstance(faces, np.ndarray) and faces.shape == (5, 2):
        raise ValueError("align_faces takes [N, 5, 2] landmarks; for one face's (5, 2) landmarks use featherface.align")
    try:
        items = list(faces)
    except TypeError:
        raise TypeError(f"faces must be a list of Detection or an [N, 5, 2] array, got {type(faces).__name__}") from None
    landmarks = []
    for i, face in enumerate(items):
        try:
            landmarks.append(_landmarks(face))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"faces[{i}]: {exc}") from None
    img, out_rgb = _bgr_and_order(image, color)
    tpl = template((h, w))
    out = np.empty((len(landmarks), h, w, 3), dtype=np.uint8)
    for i, pts in enumerate(landmarks):
        warped = _warp(img, pts, tpl, h, w)
        out[i] = warped[:, :, ::-1] if out_rgb else warped
    return out
