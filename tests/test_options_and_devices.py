"""Detector options of the wrong type, unusable devices and the package's submodules as attributes.

Each error must name the problem and the fix: which option, what it got, what it takes; which
device, why it is unusable here, what to use instead (the same words from Python and the CLI).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import featherface
from featherface import DetectorOptions, cli

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.png"

WRONG_TYPES = [
    ("score_threshold", "0.5", "a number in [0, 1]"),
    ("iou_threshold", [0.4], "a number in [0, 1]"),
    ("pre_nms_top_k", 100.0, "a positive int or None"),
    ("max_detections", "10", "a positive int or None"),
    ("input_size", 640.5, "None, a positive int or (height, width)"),
    ("input_size", (480, "640"), "None, a positive int or (height, width)"),
    ("max_size", True, "a positive int or None"),
    ("max_input_pixels", None, "a positive int"),
    ("legacy_nms", "yes", "True or False"),
]


@pytest.mark.parametrize(("name", "value", "takes"), WRONG_TYPES)
def test_an_option_of_the_wrong_type_says_which_what_it_got_and_what_it_takes(name, value, takes) -> None:
    with pytest.raises(TypeError) as exc:
        DetectorOptions(**{name: value})
    message = str(exc.value)
    assert f"detector option {name} takes {takes}" in message
    assert repr(value) in message and type(value).__name__ in message


def test_the_same_error_from_load_model_and_detect() -> None:
    with pytest.raises(TypeError, match=r"score_threshold takes a number in \[0, 1\]; got '0.5' \(str\)"):
        featherface.load_model("v2_ultra", pretrained=False, device="cpu", score_threshold="0.5")
    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu")
    with pytest.raises(TypeError, match=r"max_detections takes a positive int or None; got 2.5 \(float\)"):
        det.detect(np.zeros((32, 32, 3), np.uint8), max_detections=2.5)


def test_values_out_of_range_are_value_errors_with_the_same_wording() -> None:
    with pytest.raises(ValueError, match=r"detector option score_threshold takes a number in \[0, 1\]; got 1.5"):
        DetectorOptions(score_threshold=1.5)
    with pytest.raises(ValueError, match="detector option max_size takes a positive int or None; got 0"):
        DetectorOptions(max_size=0)


def test_numpy_scalars_and_list_sizes_are_accepted_and_normalised() -> None:
    opts = DetectorOptions(score_threshold=np.float32(0.25), max_detections=np.int64(5), input_size=[48, 64])
    assert opts.score_threshold == 0.25 and type(opts.score_threshold) is float
    assert opts.max_detections == 5 and type(opts.max_detections) is int
    assert opts.input_size == (48, 64)
    assert dataclasses.replace(opts) == opts


# -- devices ----------------------------------------------------------------------------------------


@pytest.fixture()
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without a usable GPU, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_without_a_gpu_is_a_clear_error_in_python(no_cuda: None) -> None:
    with pytest.raises(ValueError) as exc:
        featherface.load_model("v2_ultra", pretrained=False, device="cuda")
    message = str(exc.value)
    assert "device 'cuda': CUDA is not available on this machine" in message
    assert "device='cpu'" in message and "--device cpu" in message


def test_cli_and_python_give_the_same_device_message(no_cuda: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as exc:
        featherface.load_model("v2_ultra", pretrained=False, device="cuda")
    code = cli.main(["detect", str(ASTRONAUT), "--random-weights", "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"featherface: error: {exc.value}"


def test_an_invalid_device_name_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="invalid device 'tpu9': expected 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        featherface.load_model("v2_ultra", pretrained=False, device="tpu9")


# -- submodules as attributes -----------------------------------------------------------------------


def test_public_submodules_are_attributes_without_importing_them() -> None:
    code = ("import featherface, sys; "
            "assert 'featherface.io' not in sys.modules; "
            "print(featherface.io.load_image.__name__, featherface.errors.WeightsError.__name__, "
            "featherface.pipeline.make_batch.__name__, featherface.export_onnx.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["load_image", "WeightsError", "make_batch", "export_onnx"]


PUBLIC_MODULES = {"featherface.cli", "featherface.detection", "featherface.errors", "featherface.integrations",
                  "featherface.integrations.ray", "featherface.io", "featherface.pipeline", "featherface.train"}
"""Every public module of the core: everything else has an underscore (``featherface.train`` keeps its
own surface below it; ``featherface.cli``'s interface is the command line)."""


def test_the_public_modules_are_exactly_these() -> None:
    import pkgutil

    found = {m.name for m in pkgutil.walk_packages(featherface.__path__, "featherface.")
             if not any(part.startswith("_") for part in m.name.split(".")[1:])
             and not m.name.startswith("featherface.train.")}
    assert found == PUBLIC_MODULES
    top = {name.split(".")[1] for name in PUBLIC_MODULES}
    assert featherface.SUBMODULES == top
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        featherface.nope  # noqa: B018


def test_load_model_takes_an_options_object_and_overrides() -> None:
    """``options=`` is the detector's defaults as one object (what the command line builds once);
    keyword overrides change single fields of it."""
    import featherface
    from featherface._options import DetectorOptions

    base = DetectorOptions(score_threshold=0.7, input_size=320)
    det = featherface.load_model("v2_ultra", device="cpu", options=base, max_detections=3)
    assert det.options == DetectorOptions(score_threshold=0.7, input_size=320, max_detections=3)
    assert base.max_detections == 750  # the caller's object is not changed
    with pytest.raises(TypeError, match="DetectorOptions"):
        featherface.load_model("v2_ultra", device="cpu", options={"score_threshold": 0.7})
