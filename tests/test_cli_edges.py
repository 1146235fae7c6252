"""Edges of the command line: value checks with the right exit codes, flags that reach the library,
``featherface bench`` without ONNX Runtime, the ``featherface models`` layout, and the huge-image hint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

import featherface
from featherface import cli, save_weights_folder
from featherface._weights.registry import get_config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("featherface: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights") / "w"
    torch.manual_seed(0)
    save_weights_folder(featherface.build_model("v2_ultra"), get_config("v2_ultra"), folder)
    return folder


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "a.png"
    assert cv2.imwrite(str(path), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    return path


# -- evaluate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--subset", "--max-size", "--threads"])
@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_evaluate_rejects_non_positive_counts(capsys, tmp_path, flag, value) -> None:
    code, out, err = run(capsys, "evaluate", "--model", "v2_ultra", "--widerface", str(tmp_path), flag, value)
    assert code == 2 and out == ""
    line = one_line(err)
    assert flag in line and "positive integer" in line


@pytest.fixture()
def fake_widerface(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the WIDER FACE run (which needs the data set) by a recorder of the detector it gets."""
    pytest.importorskip("scipy")
    import featherface.train.widerface_eval as widerface

    seen: list[Any] = []

    def evaluate(det: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append((det, kwargs))
        return {"easy": 0.0, "medium": 0.0, "hard": 0.0, "num_images": 0, "images_per_s": 0.0,
                "protocol": "stub"}

    monkeypatch.setattr(widerface, "evaluate_detector_on_widerface", evaluate)
    return seen


def test_evaluate_model_names_the_architecture_of_a_bare_file(capsys, tmp_path, weights, fake_widerface) -> None:
    bare = weights / "model.safetensors"
    code, out, err = run(capsys, "evaluate", "--model", "v2_ultra", "--weights", str(bare),
                         "--widerface", str(tmp_path), "--subset", "2", "--device", "cpu")
    assert code == 0, err
    [(det, kwargs)] = fake_widerface
    assert det.name == "v2_ultra" and det.weights_source == "explicit" and kwargs["subset"] == 2
    # without --model the bare file is refused, and the message names the flag
    code, _, err = run(capsys, "evaluate", "--weights", str(bare), "--widerface", str(tmp_path), "--device", "cpu")
    assert code == 1 and "--model NAME" in one_line(err)
    code, _, err = run(capsys, "evaluate", "--widerface", str(tmp_path))
    assert code == 2 and "--model" in one_line(err)


# -- detect -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_detect_onnxruntime_with_a_gpu_device_is_a_usage_error(capsys, image, weights, device) -> None:
    code, out, err = run(capsys, "detect", str(image), "--weights", str(weights), "--backend", "onnxruntime",
                         "--device", device)
    assert code == 2 and out == ""
    line = one_line(err)
    assert "onnxruntime" in line and "CPU" in line and device in line


def test_detect_threads_reaches_load_model(capsys, image, weights, monkeypatch) -> None:
    calls: list[dict[str, Any]] = []
    real = featherface.load_model

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(featherface, "load_model", spy)
    before = torch.get_num_threads()
    try:
        code, out, err = run(capsys, "detect", str(image), "--weights", str(weights), "--threads", "1",
                             "--device", "cpu", "--score-threshold", "0.99")
        assert code == 0, err
        assert calls and calls[-1]["num_threads"] == 1
        assert torch.get_num_threads() == before  # set per call by the detector, restored after
        code, _, _ = run(capsys, "detect", str(image), "--weights", str(weights), "--device", "cpu")
        assert code == 0 and "num_threads" not in calls[-1]  # not given: the current setting stays
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "-2", "two"):
        code, _, err = run(capsys, "detect", str(image), "--threads", bad)
        assert code == 2 and "--threads" in one_line(err)


def test_huge_image_message_names_api_keywords_and_cli_flags(capsys, image, weights) -> None:
    code, out, err = run(capsys, "detect", str(image), "--weights", str(weights), "--device", "cpu",
                         "--max-input-pixels", "1000")
    assert code == 1
    first = err.strip().splitlines()[0]
    for needle in ("max_size=", "--max-size", "max_input_pixels=", "--max-input-pixels"):
        assert needle in first, first
    # both remedies work from the command line
    for flags in (["--max-input-pixels", "1000", "--max-size", "30"], ["--max-input-pixels", "4000"]):
        code, out, err = run(capsys, "detect", str(image), "--weights", str(weights), "--device", "cpu", *flags)
        assert code == 0, err
    code, _, err = run(capsys, "detect", str(image), "--max-input-pixels", "0")
    assert code == 2 and "max_input_pixels" in one_line(err)


# -- bench --------------------------------------------------------------------------------------------


def _bench_args(tmp_path: Path) -> list[str]:
    return ["bench", "--models", "v2_ultra", "--sizes", "48x40", "--threads", "1", "--runs", "1",
            "--warmup", "0", "--json-out", str(tmp_path / "b.json")]


def test_bench_without_onnxruntime_skips_its_rows_with_a_note(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    code, out, err = run(capsys, *_bench_args(tmp_path))
    assert code == 0, err
    report = json.loads((tmp_path / "b.json").read_text())
    assert [r["backend"] for r in report["results"]] == ["torch"]
    assert "error" not in report["results"][0]
    assert any("onnxruntime is not installed" in n for n in report["notes"])
    assert "onnxruntime is not installed" in out and "note: ONNX Runtime rows skipped" in err
    assert "--backends torch " in report["command"]
    # asked for by name, it is an error (exit 1) with the pip command
    code, _, err = run(capsys, *_bench_args(tmp_path), "--backends", "onnxruntime")
    assert code == 1 and "featherface[onnx]" in one_line(err)


# -- models -------------------------------------------------------------------------------------------


def test_models_fits_100_columns_and_shows_every_models_metrics(capsys) -> None:
    code, out, err = run(capsys, "models")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith(" ") and ":" not in line}
    assert set(rows) == set(featherface.list_models())
    assert rows["v1"].split()[-5:] == ["91.47", "/", "90.06", "/", "75.90"]
    for name in featherface.list_models():
        assert "-" not in rows[name].split()[4:], rows[name]  # every model has metrics
    assert "easy 91.47%, medium 90.06%, hard 75.90%" in out
    assert "convert-reference" in out and "17aa64d" in out


def test_models_json_has_v1_metrics_and_source(capsys) -> None:
    records = {r["name"]: r for r in json.loads(run(capsys, "models", "--json")[1])}
    v1 = records["v1"]
    assert round(100 * v1["metrics"]["easy"], 2) == 91.47 and round(100 * v1["metrics"]["hard"], 2) == 75.90
    assert "WIDER FACE val" in v1["metrics_protocol"]
    assert v1["source"]["commit"].startswith("17aa64d") and v1["license"].startswith("MIT")


def test_positive_int() -> None:
    from featherface.cli._options import positive_int

    assert positive_int("3") == 3
    for bad in ("0", "-1", "1.5", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)
