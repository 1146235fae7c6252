"""The ONNX Runtime backend: same detections as torch, ONNX cache, options and errors."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import featherface
import featherface._engines.onnxruntime
from featherface import save_weights_folder
from featherface._engines.onnxruntime import (
    OnnxRuntimeRunner,
    backend_opset,
    onnx_cache_dir,
    onnxruntime_has_deform_conv,
)
from featherface._weights.registry import get_config
from featherface.pipeline import make_batch
from tests._deploy_helpers import make_realistic_, read_bgr

pytest.importorskip("onnxruntime", reason="onnxruntime comes with the onnx extra")

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"score_threshold": 0.9, "max_detections": 30}


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEATHERFACE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture(scope="module", params=["v1", "v2_ultra"])
def weights(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights") / request.param
    net = make_realistic_(featherface.build_model(request.param), seed=0)
    save_weights_folder(net, get_config(request.param), folder)
    return folder


def _images() -> list[np.ndarray]:
    img = read_bgr(ROOT / "examples" / "images" / "astronaut.png")
    g = np.random.default_rng(0)
    noise = np.repeat(np.repeat(g.integers(0, 256, (12, 20, 3), dtype=np.uint8), 8, 0), 8, 1)
    return [img, np.ascontiguousarray(img[::-1]), np.ascontiguousarray(img[100:291, 37:300]), noise]


def _same(a: list[featherface.Detection], b: list[featherface.Detection]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert abs(x.score - y.score) <= 1e-3
        assert np.abs(np.subtract(x.box, y.box)).max() <= 1e-2  # original-image pixels
        assert np.abs(np.subtract(x.landmarks, y.landmarks)).max() <= 1e-2


def test_onnxruntime_detections_equal_torch(weights: Path, cache: Path) -> None:
    torch_det = featherface.load_model(weights=weights, device="cpu", **OPTIONS)
    ort_det = featherface.load_model(weights=weights, backend="onnxruntime", **OPTIONS)
    assert (torch_det.backend, ort_det.backend) == ("torch", "onnxruntime")
    assert "backend='onnxruntime'" in repr(ort_det) and ort_det.device == torch.device("cpu")
    assert isinstance(ort_det.runner, OnnxRuntimeRunner) and ort_det.runner.path.parent == cache
    images = _images()
    expected = [torch_det.detect(img, color="bgr") for img in images]
    assert sum(len(e) for e in expected) > 40
    for img, exp in zip(images, expected):
        _same(exp, ort_det.detect(img, color="bgr"))
    resized = {"input_size": (200, 300), "score_threshold": 0.8}  # per-call options, another network size
    _same(torch_det.detect(images[0], color="bgr", **resized), ort_det.detect(images[0], color="bgr", **resized))
    batch = ort_det.detect_batch(images, color="bgr")  # mixed sizes; same-size images run as one batch
    for exp, got in zip(expected, batch):
        _same(exp, got)
    x = make_batch([images[0], images[1]], torch_det.config.mean_bgr, torch_det.runner.batch_spec)
    for a, b in zip(torch_det.runner(x), ort_det.runner(x)):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-3


def test_cache_is_reused(weights: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = featherface.load_model(weights=weights, backend="onnxruntime")
    files = list(cache.glob("*.onnx"))
    assert len(files) == 1 and first.runner.path == files[0]
    name = files[0].name
    assert name.startswith(first.name + "-") and f"featherface{featherface.__version__}" in name
    assert name.endswith(f"-opset{backend_opset()}.onnx")
    mtime = files[0].stat().st_mtime_ns

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again instead of using the cache")

    monkeypatch.setattr(featherface._engines.onnxruntime, "export_network_onnx", no_export)
    second = featherface.load_model(weights=weights, backend="onnxruntime")
    assert second.runner.path == files[0] and files[0].stat().st_mtime_ns == mtime
    assert list(cache.glob("*")) == files  # no temporary files left behind
    # other weights -> another cache entry (which needs an export)
    net = featherface.build_model(first.name)
    with pytest.raises(AssertionError, match="exported again"):
        featherface.FaceDetector(net, first.config, backend="onnxruntime", weights_source="explicit")


def test_random_weights_and_explicit_onnx_path(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    det = featherface.load_model("v2_ultra", pretrained=False, backend="onnxruntime", num_threads=1)
    assert det.backend == "onnxruntime"
    x = torch.randn(1, 3, 64, 96) * 50
    with torch.no_grad():  # the ONNX graph computes the random network's raw outputs
        for p, q in zip(det.runner(x), det.network(x)):
            torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4 * float(q.abs().max()))
    assert det.runner.session.get_session_options().intra_op_num_threads == 1
    assert not cache.exists()  # random networks are not cached
    path = tmp_path / "mine" / "v2.onnx"
    torch.manual_seed(0)
    a = featherface.load_model("v2_ultra", pretrained=False, backend="onnxruntime", onnx_path=path, **OPTIONS)
    assert path.exists() and a.runner.path == path
    monkeypatch.setattr(featherface._engines.onnxruntime, "export_network_onnx", lambda *a, **k: 1 / 0)
    torch.manual_seed(1)  # another network: the given file is used as it is
    b = featherface.load_model("v2_ultra", pretrained=False, backend="onnxruntime", onnx_path=path)
    x = torch.randn(1, 3, 40, 56) * 50
    for p, q in zip(a.runner(x), b.runner(x)):
        assert torch.equal(p, q)


def test_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    with pytest.raises(ValueError, match="runs on the CPU"):
        featherface.load_model("v2_ultra", pretrained=False, backend="onnxruntime", device="cuda")
    post = featherface.export_onnx(featherface.build_model("v2_ultra"), tmp_path / "post.onnx",
                                          with_postprocess=True)
    with pytest.raises(ValueError, match="not a featherface raw graph"):
        featherface.load_model("v2_ultra", pretrained=False, backend="onnxruntime", onnx_path=post)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "featherface\[onnx\]"'):
        featherface.load_model("v2_ultra", pretrained=False, backend="onnxruntime")
    assert featherface.load_model("v2_ultra", pretrained=False, device="cpu").backend == "torch"  # unaffected
    assert not cache.exists()


def test_cache_dir_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FEATHERFACE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_cache_dir() == tmp_path / "xdg" / "featherface" / "onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert onnx_cache_dir() == Path.home() / ".cache" / "featherface" / "onnx"
    monkeypatch.setenv("FEATHERFACE_CACHE", str(tmp_path / "ff"))
    assert onnx_cache_dir() == tmp_path / "ff" / "onnx"


def test_concurrent_detect_calls(weights: Path, cache: Path) -> None:
    det = featherface.load_model(weights=weights, backend="onnxruntime", **OPTIONS)
    images = _images()[2:]
    expected = [det.detect(img, color="bgr") for img in images]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for k in range(3):
                j = (i + k) % len(images)
                assert det.detect(images[j], color="bgr") == expected[j]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_v1_backend_graph_uses_native_deform_conv_where_supported(weights: Path, cache: Path) -> None:
    onnx = pytest.importorskip("onnx")
    det = featherface.load_model(weights=weights, backend="onnxruntime")
    ops = {n.op_type for n in onnx.load(str(det.runner.path)).graph.node}
    if det.name == "v2_ultra":
        assert not ops & {"DeformConv", "GridSample"}
    elif onnxruntime_has_deform_conv():
        assert "DeformConv" in ops and "GridSample" not in ops and backend_opset() == 19
    else:
        assert "GridSample" in ops and "DeformConv" not in ops and backend_opset() == 17


def test_deform_conv_probe_says_no_when_the_runtime_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    class NoDeformConv:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for DeformConv(19)")

    onnxruntime_has_deform_conv.cache_clear()
    monkeypatch.setattr(onnxruntime, "InferenceSession", NoDeformConv)
    try:
        assert onnxruntime_has_deform_conv() is False and backend_opset() == 17
    finally:
        onnxruntime_has_deform_conv.cache_clear()
