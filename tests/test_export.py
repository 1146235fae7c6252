"""ONNX export (featherface._export, ``featherface export``): raw graph and detector graph in ONNX Runtime."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import featherface
from featherface import cli
from featherface._engines.onnx_export import export_network_onnx
from featherface._export import DetectionGraph, export_onnx
from featherface._models.fuse import fuse_for_inference
from featherface._ops.priors import generate_priors, priors_for_shape
from tests._deploy_helpers import make_realistic_, randomize_batchnorms_, read_bgr

ort = pytest.importorskip("onnxruntime", reason="onnxruntime comes with the onnx extra")
onnx = pytest.importorskip("onnx", reason="onnx comes with the onnx extra")

ROOT = Path(__file__).resolve().parents[1]
RAW_SIZES = [(64, 96), (75, 131), (160, 160)]
THRESHOLDS = {"score_threshold": 0.9, "iou_threshold": 0.4, "max_detections": 25}


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _smooth_input(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((batch, 3, max(1, h // 8), max(1, w // 8)), generator=g) * 255.0 - 115.0
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module", params=["v1", "v2_ultra"])
def detector(request: pytest.FixtureRequest) -> featherface.FaceDetector:
    net = make_realistic_(featherface.build_model(request.param), seed=0)
    return featherface.FaceDetector(net, net.config, device="cpu", options=featherface.DetectorOptions(**THRESHOLDS))


@pytest.fixture(scope="module")
def raw_onnx(detector: featherface.FaceDetector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(detector, tmp_path_factory.mktemp("onnx") / f"{detector.name}.onnx")


@pytest.fixture(scope="module")
def post_onnx(detector: featherface.FaceDetector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(detector, tmp_path_factory.mktemp("onnx") / f"{detector.name}_post.onnx",
                       with_postprocess=True)


def _raw_outputs_agree(sess: ort.InferenceSession, net: torch.nn.Module, *, exact_budget: bool) -> None:
    """ONNX Runtime vs PyTorch at several sizes and batch sizes, one session (no re-export).

    ``exact_budget``: within 1e-4 of the fused and unfused float32 networks. Otherwise (weights
    that amplify rounding): ONNX Runtime is within 1e-4, or within 3x PyTorch float32's own error,
    of the float64 result.
    """
    fused = fuse_for_inference(net)
    net64 = copy.deepcopy(net).double()
    for i, (h, w) in enumerate(RAW_SIZES):
        for batch in (1, 3):
            x = _smooth_input(batch, h, w, seed=10 * i + batch)
            with torch.no_grad():
                ref, unfused = fused(x), net(x)
                exact = net64(x.double())
            out = sess.run(None, {"input": x.numpy()})
            for o, r, u, e in zip(out, ref, unfused, exact, strict=True):
                assert o.shape == tuple(r.shape) and o.dtype == np.float32
                if exact_budget:
                    assert np.abs(o - r.numpy()).max() <= 1e-4, (h, w, batch)
                    assert np.abs(o - u.numpy()).max() <= 1e-4, (h, w, batch)
                else:
                    torch_err = float((u.double() - e).abs().max())
                    assert np.abs(o - e.numpy()).max() <= max(1e-4, 3 * torch_err), (h, w, batch)
                    assert float(e.std()) > 0.05  # realistic outputs, not near-constant ones


def _check_raw_model(path: Path) -> None:
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["loc", "logits", "landmarks"]
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)  # exported fused


def test_raw_graph_matches_pytorch(detector: featherface.FaceDetector, raw_onnx: Path) -> None:
    _check_raw_model(raw_onnx)
    _raw_outputs_agree(_session(raw_onnx), detector.network, exact_budget=False)


@pytest.mark.parametrize("opset", [17, 19])
@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
def test_raw_graph_matches_pytorch_within_1e4(name: str, opset: int) -> None:
    """Opset 17 writes V1's deformable convs as GridSample + MatMul, opset 19 as native DeformConv."""
    from featherface._engines.onnxruntime import onnxruntime_has_deform_conv

    if opset == 19 and not onnxruntime_has_deform_conv():
        pytest.skip(f"onnxruntime {ort.__version__} has no DeformConv kernel")
    torch.manual_seed(0)
    net = randomize_batchnorms_(featherface.build_model(name), seed=2)
    data = export_network_onnx(net, opset=opset)
    assert isinstance(data, bytes)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert model.opset_import[0].version == opset
    if name == "v1":
        assert ("DeformConv" in ops, "GridSample" in ops) == ((True, False) if opset >= 19 else (False, True))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    _raw_outputs_agree(ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]), net, exact_budget=True)


def _reference_priors(h: int, w: int, cfg: featherface.PriorConfig) -> torch.Tensor:
    """The reference PriorBox loop in Python floats: level, row, column, anchor size."""
    rows = [[(j + 0.5) * step / w, (i + 0.5) * step / h, s / w, s / h]
            for step, sizes in zip(cfg.steps, cfg.min_sizes)
            for i in range(math.ceil(h / step)) for j in range(math.ceil(w / step)) for s in sizes]
    out = torch.tensor(rows, dtype=torch.float64)
    return (out.clamp(0.0, 1.0) if cfg.clip else out).to(torch.float32)


@pytest.mark.parametrize("size", [(1, 1), (33, 47), (75, 131), (405, 700), (480, 640)])
def test_in_graph_priors_equal_the_reference_loop(size: tuple[int, int]) -> None:
    """The traceable prior function (what the ONNX detector graph runs, and what generate_priors caches)
    gives the reference loop's values bit for bit."""
    cfg = featherface.PriorConfig()
    h, w = (torch.tensor(v) for v in size)
    expect = _reference_priors(*size, cfg)
    assert torch.equal(priors_for_shape(h, w, cfg), expect)
    assert torch.equal(generate_priors(size, cfg), expect)


def _pixels(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _match(expected: list[featherface.Detection], boxes: np.ndarray, scores: np.ndarray, pts: np.ndarray) -> None:
    _match_arrays(np.array([e.box for e in expected]).reshape(-1, 4), np.array([e.score for e in expected]),
                  np.array([e.landmarks for e in expected]).reshape(-1, 10), boxes, scores, pts)


def _match_arrays(eb: np.ndarray, es: np.ndarray, ep: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                  pts: np.ndarray) -> None:
    """Same faces (count equal; box, score, landmarks within 1e-3). Matched by box, because faces
    whose scores differ by less than float32 rounding may come out in either order."""
    assert len(eb) == len(boxes) == len(scores) == len(pts) > 0
    free = list(range(len(boxes)))
    for b, s, p in zip(eb, es, ep):
        j = min(free, key=lambda k: np.abs(boxes[k] - b).max())
        free.remove(j)
        assert np.abs(boxes[j] - b).max() <= 1e-3
        assert abs(scores[j] - s) <= 1e-3
        assert np.abs(pts[j] - p).max() <= 1e-3


def test_detector_graph_matches_detect(detector: featherface.FaceDetector, post_onnx: Path) -> None:
    model = onnx.load(str(post_onnx))
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["boxes", "scores", "landmarks", "batch_index"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    ops = {n.op_type for n in model.graph.node}
    assert "NonMaxSuppression" in ops and "Range" in ops  # NMS and priors computed in the graph
    sess = _session(post_onnx)
    img = read_bgr(ROOT / "examples" / "images" / "astronaut.png")
    flipped = np.ascontiguousarray(img[::-1, ::-1])  # different content, same size
    small = np.ascontiguousarray(img[100:291, 37:300])  # odd size: 191 x 263
    cases = [np.stack([_pixels(img), _pixels(flipped)]), _pixels(small)[None]]
    for batch in cases:  # dynamic batch and size, no re-export
        boxes, scores, pts, index = sess.run(None, {"input": batch})
        assert index.dtype == np.int64 and boxes.shape[1:] == (4,) and pts.shape[1:] == (10,)
        assert np.all(np.diff(index) >= 0)  # image by image
        for b in range(batch.shape[0]):
            expected = detector.detect(np.ascontiguousarray(batch[b].transpose(1, 2, 0)), color="bgr")
            exp_scores = [f.score for f in expected]  # precondition: no exact ties (their order is arbitrary)
            assert len(set(exp_scores)) == len(exp_scores) and max(exp_scores) < 1.0
            sel = index == b
            assert 0 < len(expected) <= THRESHOLDS["max_detections"]
            if batch.shape[-1] == 512:  # the 512 x 512 images have more candidates than the cap
                assert len(expected) == THRESHOLDS["max_detections"]
            _match(expected, boxes[sel], scores[sel], pts[sel])
            assert np.all(np.diff(scores[sel]) <= 0) and np.all(scores[sel] > THRESHOLDS["score_threshold"])


def test_detector_graph_eager_equals_onnx(detector: featherface.FaceDetector, post_onnx: Path) -> None:
    graph = DetectionGraph(fuse_for_inference(detector.network), detector.config, detector.options).eval()
    x = torch.from_numpy(_pixels(read_bgr(ROOT / "examples" / "images" / "astronaut.png"))[None, :, ::2, ::2].copy())
    with torch.no_grad():
        ref = graph(x)
    boxes, scores, pts, index = _session(post_onnx).run(None, {"input": x.numpy()})
    assert np.array_equal(index, ref[3].numpy())
    _match_arrays(*(r.numpy() for r in ref[:3]), boxes, scores, pts)


def test_detector_graph_with_float_input_and_nothing_found(tmp_path: Path) -> None:
    net = make_realistic_(featherface.build_model("v2_ultra"), seed=1)
    path = export_onnx(net, tmp_path / "f.onnx", with_postprocess=True, input_dtype="float32",
                       score_threshold=1.0, max_detections=None)
    boxes, scores, pts, index = _session(path).run(None, {"input": np.full((2, 3, 40, 56), 100.0, np.float32)})
    assert boxes.shape == (0, 4) and scores.shape == (0,) and pts.shape == (0, 10) and index.shape == (0,)


def test_export_rejects_legacy_nms_and_bad_input(tmp_path: Path) -> None:
    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu", legacy_nms=True)
    with pytest.raises(ValueError, match="legacy_nms"):
        export_onnx(det, tmp_path / "a.onnx", with_postprocess=True)
    with pytest.raises(TypeError, match="FaceDetector"):
        export_onnx(42, tmp_path / "a.onnx")  # type: ignore[arg-type]


@pytest.mark.parametrize("post", [False, True])
def test_cli_export(post: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "x.onnx"
    argv = ["export", "--model", "v2_ultra", "--random-weights", "--format", "onnx", "-o", str(out)]
    if post:
        argv += ["--with-postprocess", "--score-threshold", "0.2"]
    assert cli.main(argv) == 0
    assert str(out) in capsys.readouterr().out
    sess = _session(out)
    x = np.full((1, 3, 48, 64), 120, np.uint8 if post else np.float32)
    names = ["boxes", "scores", "landmarks", "batch_index"] if post else ["loc", "logits", "landmarks"]
    assert [o.name for o in sess.get_outputs()] == names
    res = sess.run(None, {"input": x})
    assert res[0].shape[-1] == 4
    if not post:
        assert res[0].shape == (1, 8 * 6 * 2 + 4 * 3 * 2 + 2 * 2 * 2, 4)


def test_cli_export_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", "--random-weights", "-o", str(tmp_path / "a.onnx"), "--format", "tflite"]) == 2
    assert cli.main(["export", "--random-weights", "-o", str(tmp_path / "a.onnx"), "--score-threshold", "0.3"]) == 2
    assert cli.main(["export", "--random-weights"]) == 2  # -o is required
    assert "error" in capsys.readouterr().err and not (tmp_path / "a.onnx").exists()


def test_missing_onnx_package_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "featherface\[onnx\]"'):
        export_onnx(featherface.build_model("v2_ultra"), tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx").exists()
