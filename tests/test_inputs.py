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
from featherface.errors import ImageError
from featherface.io import load_image

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



# -- EXIF orientation: the same pixels by path, bytes, file object and PIL image -------------------


def _asymmetric_rgb(h: int = 24, w: int = 40) -> np.ndarray:
    """Smooth and non-symmetric, so that each of the 8 orientations gives a different array and
    JPEG keeps it close to the original."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + 2 * y) * 255 // (w + 2 * h)], axis=2)
    return img.astype(np.uint8)


def _write_with_orientation(path: Path, orientation: int) -> None:
    pil = Image.fromarray(_asymmetric_rgb())
    exif = Image.Exif()
    exif[0x0112] = orientation
    pil.save(path, exif=exif.tobytes(), **({"quality": 95} if path.suffix == ".jpg" else {}))


@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_is_applied_to_pil_images_as_to_files(tmp_path: Path, ext: str, orientation: int) -> None:
    from PIL import ImageOps

    path = tmp_path / f"oriented{ext}"
    _write_with_orientation(path, orientation)
    by_path = load_image(path)
    np.testing.assert_array_equal(load_image(path.read_bytes()), by_path)
    with path.open("rb") as f:
        np.testing.assert_array_equal(load_image(f), by_path)
    pil = Image.open(path)
    assert pil.getexif()[0x0112] == orientation
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    if orientation in (5, 6, 7, 8):  # a quarter turn: height and width swap
        assert by_path.shape[:2] == (40, 24)
    got = load_image(pil)
    assert got.shape == by_path.shape
    assert pil.size == (40, 24) and pil.getexif()[0x0112] == orientation  # the caller's image is untouched
    # PNG is lossless: exact. JPEG: Pillow's and OpenCV's decoders may round a few levels apart; a
    # wrong orientation differs by far more (the image is a gradient in every direction).
    atol = 0 if ext == ".png" else 3
    np.testing.assert_allclose(as_rgb(got).astype(int), reference.astype(int), rtol=0, atol=atol)
    np.testing.assert_allclose(got.astype(int), by_path.astype(int), rtol=0, atol=atol)


def test_a_pil_image_without_orientation_is_read_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.fromarray(RGB8).save(path)
    np.testing.assert_array_equal(as_rgb(load_image(Image.open(path))), RGB8)


def test_exif_oriented_face_scores_the_same_by_path_and_as_a_pil_image(tmp_path: Path) -> None:
    """The user report: a rotated portrait scored 0.99 by path and 0.61 as ``Image.open``."""
    import featherface

    astronaut = Path(__file__).resolve().parents[1] / "examples" / "images" / "astronaut.png"
    upright = Image.open(astronaut).convert("RGB").resize((256, 256))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera stores it; tag 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu", score_threshold=0.05,
                                 max_detections=3)
    by_path = det.detect(path)
    as_pil = det.detect(Image.open(path))
    assert len(by_path) == len(as_pil) > 0
    for a, b in zip(by_path, as_pil, strict=True):
        np.testing.assert_allclose(a.box, b.box, atol=1.0)
        assert abs(a.score - b.score) < 0.02


# -- file objects ------------------------------------------------------------------------------------


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    assert ok
    return buf.tobytes()


def test_binary_file_objects_are_read_from_their_current_position(tmp_path: Path) -> None:
    import io

    data = _png_bytes(RGB8)
    stream = io.BytesIO(b"HEADER" + data)
    stream.seek(6)
    np.testing.assert_array_equal(as_rgb(load_image(stream)), RGB8)
    assert stream.tell() == 6 + len(data) and not stream.closed  # read, neither rewound nor closed
    assert stream.getvalue() == b"HEADER" + data
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with path.open("rb") as f:
        np.testing.assert_array_equal(as_rgb(load_image(f)), RGB8)
        assert not f.closed
    with path.open("rb", buffering=0) as raw:  # an unbuffered FileIO
        np.testing.assert_array_equal(as_rgb(load_image(raw)), RGB8)


def test_an_exhausted_stream_says_to_seek_back() -> None:
    import io

    stream = io.BytesIO(_png_bytes(RGB8))
    load_image(stream)
    with pytest.raises(ImageError, match=r"no bytes left.*seek\(0\)"):
        load_image(stream)


def test_text_mode_files_and_str_reads_are_refused_with_a_type_error(tmp_path: Path) -> None:
    import io

    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes(RGB8))
    with path.open("r", encoding="latin-1") as f:
        with pytest.raises(TypeError, match=r"text mode.*'rb'"):
            load_image(f)
        assert f.tell() == 0  # refused before anything was read
    with pytest.raises(TypeError, match="text mode"):
        load_image(io.StringIO("not an image"))

    class StrReader:
        def read(self) -> str:
            return "abc"

    with pytest.raises(TypeError, match=r"read\(\) returned str, not bytes"):
        load_image(StrReader())


def test_a_file_object_detects_like_its_bytes_and_is_one_image_not_a_batch() -> None:
    import io

    import featherface

    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu", score_threshold=0.05,
                                 max_detections=3)
    data = _png_bytes(RGB8)
    assert [f.to_dict() for f in det.detect(io.BytesIO(data))] == [f.to_dict() for f in det.detect(data)]
    with pytest.raises(TypeError, match="list"):
        det.detect_batch(io.BytesIO(data))  # iterable (by lines), but one image
    with pytest.raises(TypeError, match="not one image"):
        list(det.detect_stream(io.BytesIO(data)))
    faces = det.detect_batch([io.BytesIO(data), data])
    assert [f.to_dict() for f in faces[0]] == [f.to_dict() for f in faces[1]]


# -- uint16 arrays holding 8-bit values ------------------------------------------------------------


def test_uint16_array_with_8bit_values_warns_and_is_still_read_as_16bit() -> None:
    eight_in_16 = RGB8.astype(np.uint16)
    with pytest.warns(UserWarning, match=r"looks like 8-bit data stored as uint16.*astype\(np\.uint8\)") as rec:
        got = load_image(eight_in_16)
    assert rec[0].filename == __file__  # attributed to the caller's line, not to featherface
    np.testing.assert_array_equal(got, np.zeros_like(RGB8))  # the documented rule: v >> 8
    np.testing.assert_array_equal(as_rgb(load_image(eight_in_16.astype(np.uint8))), RGB8)  # the advice works


def test_uint16_warning_reaches_the_caller_of_detect() -> None:
    import featherface

    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu")
    with pytest.warns(UserWarning, match="8-bit data stored as uint16") as rec:
        det.detect(RGB8.astype(np.uint16))
    assert rec[0].filename == __file__


def test_uint16_tensor_with_8bit_values_warns() -> None:
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "uint16"):
        pytest.skip("this torch has no uint16 dtype")
    t = torch.from_numpy(RGB8.astype(np.int32)).permute(2, 0, 1).to(torch.uint16)
    with pytest.warns(UserWarning, match="8-bit data stored as uint16"):
        load_image(t)


@pytest.mark.parametrize("name", ["full-range uint16", "all-zero uint16", "uint8", "16-bit PNG", "PIL I;16"])
def test_no_warning_where_the_depth_is_not_in_doubt(name: str, tmp_path: Path) -> None:
    import warnings

    low = (RGB8[:, :, 0] // 2).astype(np.uint16)  # values 0..127 in a genuine 16-bit file
    path = tmp_path / "low16.png"
    assert cv2.imwrite(str(path), low)
    image = {
        "full-range uint16": RGB16,
        "all-zero uint16": np.zeros((4, 4, 3), np.uint16),  # reads the same either way
        "uint8": RGB8,
        "16-bit PNG": path,
        "PIL I;16": Image.open(path),
    }[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(image)
