"""Every input kind is read with the right intensities, or refused with a message that says why.

Conventions under test (``featherface.io``): 16-bit data keeps its high byte (``v >> 8``) whether it
comes as a file path, encoded bytes, a ``uint16`` array or a PIL image; float data in [0, 1] is
scaled by 255; PIL modes without a 16-bit or float meaning are read as Pillow's own
``convert("RGB")``; URLs are refused with what to pass instead.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from featherface import cli
from featherface.io import ImageError, load_image

Image = pytest.importorskip("PIL.Image", reason="Pillow is optional (dev extra)")

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (12, 17, 3), dtype=np.uint8)
GREY16 = RNG.integers(0, 65536, (12, 17), dtype=np.uint16)
RGB16 = RNG.integers(0, 65536, (12, 17, 3), dtype=np.uint16)


def as_rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[:, :, ::-1])


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


# -- 8-bit PIL modes: Pillow's own conversion is the reference ----------------------------------


def _pil_in_mode(mode: str) -> object:
    base = Image.fromarray(RGB8)
    if mode == "PA":
        return base.convert("P").convert("PA")
    return base.convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "RGBX", "HSV"])
def test_8bit_pil_modes_read_as_pillow_converts_them_to_rgb(mode: str) -> None:
    """A guard (these modes were already read right): the reference is Pillow's ``convert("RGB")``."""
    pil = _pil_in_mode(mode)
    assert pil.mode == mode
    expected = np.asarray(pil.convert("RGB"))
    got = load_image(pil)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(as_rgb(got), expected)


# -- 16-bit: one convention (v >> 8) for path, bytes, array and PIL -----------------------------


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_grey_file_reads_the_same_by_path_bytes_array_and_pil(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"grey16{ext}"
    assert cv2.imwrite(str(path), GREY16)
    expected = grey_to_rgb((GREY16 >> 8).astype(np.uint8))
    pil = Image.open(path)
    assert pil.mode.startswith("I;16")  # Pillow's 16-bit greyscale mode
    inputs = {
        "path": str(path),
        "bytes": path.read_bytes(),
        "array": GREY16,
        "np.asarray(PIL)": np.asarray(pil),
        "PIL": pil,
    }
    for name, image in inputs.items():
        np.testing.assert_array_equal(as_rgb(load_image(image)), expected, err_msg=name)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_file_reads_the_same_by_path_bytes_and_array(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"rgb16{ext}"
    assert cv2.imwrite(str(path), RGB16[:, :, ::-1])  # cv2 writes BGR
    expected = (RGB16 >> 8).astype(np.uint8)
    for name, image, color in [("path", str(path), "rgb"), ("bytes", path.read_bytes(), "rgb"),
                               ("array", RGB16, "rgb"), ("bgr array", RGB16[:, :, ::-1], "bgr")]:
        np.testing.assert_array_equal(as_rgb(load_image(image, color=color)), expected, err_msg=name)
    # Pillow reduces 48-bit RGB files to 8 bits with the same convention
    np.testing.assert_array_equal(as_rgb(load_image(Image.open(path))), expected)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16bit_pil_modes(mode: str) -> None:
    h, w = GREY16.shape
    if mode == "I":
        pil = Image.fromarray(GREY16.astype(np.int32))
    elif mode == "I;16B":  # big-endian samples
        pil = Image.frombytes(mode, (w, h), GREY16.astype(">u2").tobytes())
    else:
        pil = Image.fromarray(GREY16)
    assert pil.mode == mode
    np.testing.assert_array_equal(as_rgb(load_image(pil)), grey_to_rgb((GREY16 >> 8).astype(np.uint8)))


def test_mode_i_outside_16_bits_is_refused_naming_the_mode() -> None:
    pil = Image.fromarray(np.full((4, 5), 70000, dtype=np.int32))
    with pytest.raises(ImageError, match=r"mode 'I'.*0\.\.65535"):
        load_image(pil)


def test_float_pil_mode_uses_the_float_convention() -> None:
    values = RNG.random((6, 7)).astype(np.float32)
    got = load_image(Image.fromarray(values, mode="F"))
    np.testing.assert_allclose(got[:, :, 0], values * 255, rtol=0, atol=1e-3)
    with pytest.raises(ImageError, match=r"mode 'F'.*\[0, 1\]"):
        load_image(Image.fromarray(values * 1000, mode="F"))


def test_a_mode_pillow_cannot_convert_is_refused_naming_it() -> None:
    pil = Image.fromarray(RGB8).convert("LA").convert("La")
    with pytest.raises(ImageError, match="mode 'La'"):
        load_image(pil)


def test_16bit_images_detect_like_their_8bit_reduction() -> None:
    import featherface

    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu", score_threshold=0.05)
    a = det.detect(Image.fromarray(GREY16))
    b = det.detect(grey_to_rgb((GREY16 >> 8).astype(np.uint8)))
    assert [f.to_dict() for f in a] == [f.to_dict() for f in b]


# -- URLs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://example.com/face.jpg", "http://example.com/a/b.png"])
def test_a_url_is_refused_with_what_to_pass_instead(url: str) -> None:
    with pytest.raises(ImageError) as exc:
        load_image(url)
    message = str(exc.value)
    assert url in message  # not mangled into a path ("https:/example.com...")
    assert "does not download" in message and "bytes" in message and "path" in message


def test_cli_refuses_a_url_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["detect", "https://example.com/face.jpg", "--random-weights"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("featherface: error: https://example.com/face.jpg is a URL")

