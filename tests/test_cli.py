"""The ``featherface`` command line: detect, models, download, errors, and the command modules.

Most tests call :func:`featherface.cli.main` in-process; two run ``python -m featherface`` in a
subprocess to cover the real entry point. Weights are random (no trained weights are published yet)
and written by the tests themselves with ``save_weights_folder``; only the mechanics are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import featherface
from featherface import cli, save_weights_folder
from featherface._weights.registry import get_config

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--score-threshold", "0.0", "--max-detections", "3"]  # random weights: keep outputs small


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights") / "w"
    torch.manual_seed(0)
    save_weights_folder(featherface.build_model("v2_ultra"), get_config("v2_ultra"), folder)
    return folder


def _write_image(path: Path, height: int, width: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, Path]:
    """A folder with two images of different sizes, a text file and a sub-folder with one more image."""
    d = tmp_path / "imgs"
    files = {
        "dir": d,
        "a": _write_image(d / "a.png", 48, 64, 0),
        "b": _write_image(d / "b.jpg", 40, 72, 1),
        "c": _write_image(d / "sub" / "c.PNG", 56, 56, 2),
    }
    (d / "notes.txt").write_text("not an image\n")
    return files


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("featherface: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


# -- detect ---------------------------------------------------------------------------------------


def test_detect_one_file_human_readable(capsys, images, weights):
    code, out, err = run(capsys, "detect", str(images["a"]), "--weights", str(weights), *FAST)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{images['a']}: 3 faces"
    assert len(lines) == 4 and all(line.startswith("  box=(") and " score=" in line for line in lines[1:])


def test_detect_directory_json(capsys, images, weights):
    code, out, err = run(capsys, "detect", str(images["dir"]), "--weights", str(weights), "--json", *FAST)
    assert code == 0, err
    records = _json_lines(out)
    # sorted, images only (notes.txt skipped), sub-folders only with --recursive
    assert [r["image"] for r in records] == [str(images["a"]), str(images["b"])]
    assert [(r["width"], r["height"]) for r in records] == [(64, 48), (72, 40)]
    for r in records:
        assert set(r) == {"image", "width", "height", "faces"}
        assert len(r["faces"]) == 3
        for face in r["faces"]:
            assert set(face) == {"box", "score", "landmarks"}
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 <= x2 <= r["width"] and 0 <= y1 <= y2 <= r["height"]
            assert np.asarray(face["landmarks"]).shape == (5, 2)

    code, out, _ = run(capsys, "detect", str(images["dir"]), "-r", "--weights", str(weights), "--json", *FAST)
    assert code == 0
    assert [r["image"] for r in _json_lines(out)] == [str(images[k]) for k in ("a", "b", "c")]


def test_detect_two_paths_in_order(capsys, images, weights):
    code, out, err = run(capsys, "detect", str(images["b"]), str(images["a"]), "--weights", str(weights),
                         "--json", *FAST)
    assert code == 0, err
    assert [r["image"] for r in _json_lines(out)] == [str(images["b"]), str(images["a"])]


def test_detect_json_matches_python_api(capsys, images, weights):
    code, out, _ = run(capsys, "detect", str(images["a"]), "--weights", str(weights), "--json", *FAST,
                       "--input-size", "96x128", "--device", "cpu")
    assert code == 0
    det = featherface.load_model(weights=weights, device="cpu", score_threshold=0.0, max_detections=3,
                                 input_size=(96, 128))
    assert _json_lines(out)[0]["faces"] == [f.to_dict() for f in det.detect(images["a"])]


def test_save_dir_writes_annotated_copies_without_clashes(capsys, tmp_path, images, weights):
    other = _write_image(tmp_path / "other" / "a.png", 30, 50, 3)  # same stem as images["a"]
    out_dir = tmp_path / "annotated"
    code, out, err = run(capsys, "detect", str(images["a"]), str(other), "--weights", str(weights),
                         "--save-dir", str(out_dir), *FAST)
    assert code == 0, err
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["a.jpg", "a_1.jpg"]
    for name, src in (("a.jpg", images["a"]), ("a_1.jpg", other)):
        annotated = cv2.imread(str(out_dir / name))
        original = cv2.imread(str(src))
        assert annotated is not None and annotated.shape == original.shape
        assert f"saved: {out_dir / name}" in out


def test_unreadable_image_is_reported_and_the_others_still_run(capsys, images, weights):
    bad = images["dir"] / "broken.jpg"
    bad.write_bytes(b"this is not a JPEG")
    code, out, err = run(capsys, "detect", str(images["dir"]), "--weights", str(weights), "--json", *FAST)
    assert code == 1
    assert [r["image"] for r in _json_lines(out)] == [str(images["a"]), str(images["b"])]
    errors = err.strip().splitlines()
    assert errors[0].startswith("featherface: error: ") and str(bad) in errors[0] and "decodable" in errors[0]
    assert errors[-1] == "featherface: error: 1 of 3 images failed"
    assert "Traceback" not in err


def test_missing_path_is_one_line_usage_error(capsys, images, weights):
    missing = images["dir"] / "nope.jpg"
    code, out, err = run(capsys, "detect", str(images["a"]), str(missing), "--weights", str(weights))
    assert code == 2 and out == ""
    assert str(missing) in _one_error_line(err)


def test_no_image_found(capsys, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    code, _, err = run(capsys, "detect", str(tmp_path / "empty"), "--random-weights")
    assert code == 2
    assert "no image found" in _one_error_line(err) and "--recursive" in err


def test_unknown_model_lists_known_models(capsys, images):
    code, _, err = run(capsys, "detect", str(images["a"]), "--model", "v9", "--random-weights")
    assert code == 2
    line = _one_error_line(err)
    assert "'v9'" in line and all(name in line for name in featherface.list_models())


def test_missing_published_weights_is_a_clear_error(capsys, images):
    code, _, err = run(capsys, "detect", str(images["a"]), "--model", "v1")
    assert code == 1
    line = _one_error_line(err)
    assert "no published weights" in line and "--weights" in line and "--random-weights" in line


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--score-threshold", "1.5"], "score_threshold"),
        (["--max-size", "0"], "max_size"),
        (["--input-size", "big"], "--input-size"),
        (["--device", "tpu9"], "--device"),
        (["--weights", "does/not/exist"], "does/not/exist"),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(capsys, images, argv, needle):
    extra = [] if "--weights" in argv else ["--random-weights"]
    code, _, err = run(capsys, "detect", str(images["a"]), *extra, *argv)
    assert code == 2
    assert needle in _one_error_line(err)


def test_detect_backend_onnxruntime_matches_torch(capsys, images, weights, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    monkeypatch.setenv("FEATHERFACE_CACHE", str(tmp_path / "ff-cache"))  # the exported graph goes here
    args = ["detect", str(images["a"]), "--weights", str(weights), "--json", *FAST]
    code, out_torch, err = run(capsys, *args)
    assert code == 0, err
    code, out_ort, err = run(capsys, *args, "--backend", "onnxruntime")
    assert code == 0, err
    (a,), (b,) = _json_lines(out_torch), _json_lines(out_ort)
    assert len(a["faces"]) == len(b["faces"]) == 3
    for fa, fb in zip(a["faces"], b["faces"]):
        assert np.allclose(fa["box"], fb["box"], atol=1e-2) and abs(fa["score"] - fb["score"]) < 1e-4


def test_detect_backend_is_checked(capsys, images):
    code, _, err = run(capsys, "detect", str(images["a"]), "--random-weights", "--backend", "tensorrt")
    assert code == 2 and "--backend" in _one_error_line(err)


def test_weights_of_another_model_are_rejected(capsys, images, weights):
    code, _, err = run(capsys, "detect", str(images["a"]), "--weights", str(weights), "--model", "v1")
    assert code == 1
    assert "config.json" in _one_error_line(err)


def test_weights_and_random_weights_are_exclusive(capsys, images, weights):
    code, _, err = run(capsys, "detect", str(images["a"]), "--weights", str(weights), "--random-weights")
    assert code == 2
    assert "not allowed" in _one_error_line(err)


def test_random_weights_are_reproducible(capsys, images):
    outs = [run(capsys, "detect", str(images["a"]), "--random-weights", "--json", *FAST)[1] for _ in range(2)]
    assert outs[0] == outs[1] and _json_lines(outs[0])[0]["faces"]


def test_verbose_logs_to_stderr(capsys, images):
    code, out, err = run(capsys, "detect", str(images["a"]), "--random-weights", "-v", "--json", *FAST)
    assert code == 0
    assert "FaceDetector(" in err
    assert len(_json_lines(out)) == 1  # logging never goes to stdout


# -- models / download / version ------------------------------------------------------------------


def test_models_table_and_json(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["name", "params"]
    assert any(r.split()[:3] == ["v1", "592,371", "488,661"] for r in rows)
    assert any(r.split()[:3] == ["v2_ultra", "244,523", "244,523"] for r in rows)
    assert any(r.split()[0] == "v1" and r.split()[3] == "none" for r in rows)
    assert any(r.split()[0] == "v2_ultra" and r.split()[3] == "packaged" for r in rows)

    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    records = {r["name"]: r for r in json.loads(out)}
    assert set(records) == set(featherface.list_models())
    assert records["v1"]["params"] == 592371 and records["v1"]["thop_params"] == 488661
    assert records["v2_ultra"]["params"] == 244523
    assert records["v1"]["weights"] == "none" and set(records["v1"]["metrics"]) == {"easy", "medium", "hard"}
    assert records["v2_ultra"]["weights"] == "packaged" and set(records["v2_ultra"]["metrics"]) == {"easy", "medium", "hard"}


def test_download_without_published_weights(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATHERFACE_CACHE", str(tmp_path / "ff-cache"))  # v1 not installed here
    code, out, err = run(capsys, "download", "v1", "--cache-dir", str(tmp_path))
    assert code == 1
    line = _one_error_line(err)
    assert "no published weights" in line and "featherface convert-reference" in line
    # v2_ultra ships inside the package: nothing to download, and that is a success
    code, out, err = run(capsys, "download", "v2_ultra", "--cache-dir", str(tmp_path))
    assert (code, err) == (0, "")
    assert out.strip() == "v2_ultra: packaged with featherface, nothing to download (it loads offline)"


def test_download_all_succeeds_for_packaged_and_says_how_to_get_v1(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATHERFACE_CACHE", str(tmp_path / "ff-cache"))
    code, out, err = run(capsys, "download", "--all", "--cache-dir", str(tmp_path))
    assert (code, err) == (0, "")
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["v2_ultra"].startswith("packaged with featherface, nothing to download")
    assert lines["v1"].startswith("skipped, no published weights") and "featherface convert-reference" in lines["v1"]


def test_download_usage_errors(capsys):
    code, _, err = run(capsys, "download")
    assert code == 2 and "--all" in _one_error_line(err)
    code, _, err = run(capsys, "download", "nope")
    assert code == 2 and "known models" in _one_error_line(err)


@pytest.fixture()
def published_model(monkeypatch, tmp_path):
    """A registered model whose weights are "published" in a Hub cache we populate, used offline."""
    import huggingface_hub.constants

    from featherface._weights.registry import ModelSpec, WeightsSpec, register_model, unregister_model

    revision = "0123456789abcdef0123456789abcdef01234567"
    config = get_config("v2_ultra").replace(name="cli_test_model")
    cache = tmp_path / "hub"
    snapshot = cache / "models--featherface--cli-test" / "snapshots" / revision
    sha = save_weights_folder(featherface.build_model(config), config, snapshot)
    spec = ModelSpec("cli_test_model", config, "test entry", WeightsSpec(
        repo_id="featherface/cli-test", revision=revision, filename="model.safetensors", sha256=sha,
        num_params=244523, license="MIT", metrics={"easy_ap": 0.5}, metrics_protocol="test protocol"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never touch the network
    register_model(spec)
    try:
        yield cache, snapshot
    finally:
        unregister_model("cli_test_model")


def test_models_shows_published_weights_metrics_and_licence(capsys, published_model):
    code, out, _ = run(capsys, "models")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("cli_test_model "))
    assert row.split()[1:5] == ["244,523", "244,523", "hub", "easy_ap"]
    details = out.split("\ncli_test_model: ", 1)[1].split("\n\n")[0]
    assert "  metrics: easy_ap 0.5 (test protocol)" in details and "  licence: MIT" in details
    record = next(r for r in json.loads(run(capsys, "models", "--json")[1]) if r["name"] == "cli_test_model")
    assert record["weights"] == "hub" and record["metrics"] == {"easy_ap": 0.5}
    assert record["revision"] == "0123456789abcdef0123456789abcdef01234567" and record["license"] == "MIT"


def test_download_published_model_from_cache(capsys, published_model, tmp_path):
    cache, snapshot = published_model
    code, out, err = run(capsys, "download", "cli_test_model", "--cache-dir", str(cache))
    assert code == 0, err
    assert f"cli_test_model: {snapshot / 'model.safetensors'}" in out and f"cache: {cache}" in out

    code, out, err = run(capsys, "download", "cli_test_model", "--cache-dir", str(tmp_path / "empty"))
    assert code == 1  # offline and not cached: a one-line failure, no traceback
    assert "download failed" in _one_error_line(err)


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"featherface {featherface.__version__}"


def test_no_command_prints_help(capsys):
    code, out, err = run(capsys)
    assert code == 2 and "detect" in err and out == ""


def test_help_defaults_match_detector_options(capsys):
    code, out, _ = run(capsys, "detect", "--help")
    assert code == 0
    opts = featherface.DetectorOptions()
    text = " ".join(out.split())
    for flag, value in (("--score-threshold", opts.score_threshold), ("--iou-threshold", opts.iou_threshold),
                        ("--max-detections", opts.max_detections)):
        assert f"(default {value})" in text.split(flag, 2)[2], flag


# -- extensibility ----------------------------------------------------------------------------------


def _write_plugin(folder: Path, name: str) -> None:
    """A command module in the one registration style: ``register(subparsers)``, heavy work in ``run``."""
    (folder / f"{name}.py").write_text(
        "from featherface import cli\n"
        "def _greet(args):\n"
        "    print('greetings', args.who)\n"
        "    return 3\n"
        "def _hello(args):\n"
        "    print('hello', args.n, args.model)\n"
        "    return 0\n"
        "def register(sub):\n"
        "    p = sub.add_parser('greet', help='print a greeting')\n"
        "    p.add_argument('who')\n"
        "    p.set_defaults(func=_greet)\n"
        "    p = sub.add_parser('hello', help='say hello')\n"
        "    p.add_argument('--n', type=int, default=1)\n"
        "    cli.add_model_arguments(p, detection_options=False)\n"
        "    p.set_defaults(func=_hello)\n"
    )


def test_a_command_module_is_imported_only_for_its_commands(monkeypatch, capsys, tmp_path):
    _write_plugin(tmp_path, "ff_cli_plugin_for_tests")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMAND_MODULES, "ff_cli_plugin_for_tests", ("greet", "hello"))
    monkeypatch.delitem(sys.modules, "ff_cli_plugin_for_tests", raising=False)
    assert run(capsys, "models", "--json")[0] == 0
    assert "ff_cli_plugin_for_tests" not in sys.modules  # not needed for a core command
    assert run(capsys, "greet", "you")[:2] == (3, "greetings you\n")
    assert run(capsys, "hello", "--n", "3", "--model", "v1", "-v")[:2] == (0, "hello 3 v1\n")  # -v: every command
    help_text = cli.build_parser().format_help()
    assert "greet" in help_text and "say hello" in help_text


def test_missing_command_module_is_skipped(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMAND_MODULES, "featherface._no_such_cli_module", ("nothing",))
    assert run(capsys, "models", "--json")[0] == 0
    code, _, err = run(capsys, "nothing")
    assert code == 2 and "invalid choice" in _one_error_line(err)


def test_library_errors_map_to_exit_codes():
    from featherface import errors

    assert cli.exit_code(cli.CLIError("x", 2)) == 2
    for exc in (errors.DeviceError("d"), errors.UnknownModelError("m")):
        assert cli.exit_code(exc) == cli.EXIT_USAGE, exc
    for exc in (errors.WeightsError("w"), errors.WeightsNotInstalledError("w"), errors.ImageError("i"),
                errors.ConversionError("c"), FileNotFoundError("f"), ImportError("pip install x")):
        assert cli.exit_code(exc) == cli.EXIT_FAILURE, exc
    assert cli.exit_code(KeyError("a bug")) is None  # unexpected: the traceback is shown


# -- the real entry points --------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}


def test_python_m_featherface_detect_json(images, weights):
    proc = subprocess.run(
        [sys.executable, "-m", "featherface", "detect", str(images["a"]), str(images["b"]),
         "--weights", str(weights), "--json", *FAST],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    records = _json_lines(proc.stdout)
    assert [(r["width"], r["height"]) for r in records] == [(64, 48), (72, 40)]


def test_python_m_featherface_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "featherface", "detect", str(tmp_path / "missing.png"), "--random-weights"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert _one_error_line(proc.stderr) == f"featherface: error: no such file or directory: {tmp_path / 'missing.png'}"


def test_importing_the_cli_is_cheap():
    code = "import sys, featherface.cli; print(sorted(m for m in ('torch', 'cv2') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
