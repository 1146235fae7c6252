"""BatchNorm folding (featherface._models.fuse) and the fused inference path of FaceDetector."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import featherface
from featherface._models.deform import FusedModulatedDeformConv2d
from featherface._models.featherface_v1 import DeformConvBN
from featherface._models.fuse import count_batchnorms, fuse_for_inference
from tests._deploy_helpers import make_realistic_, randomize_batchnorms_, read_bgr

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(64, 96), (75, 131), (33, 47)]


def _max_diff(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def _smooth_input(batch: int, h: int, w: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Image-like input (BGR minus mean): smooth random structure, not white noise."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((batch, 3, max(1, h // 8), max(1, w // 8)), generator=g) * 255.0 - 115.0
    x = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return x.to(dtype)


@pytest.fixture(scope="module", params=["v1", "v2_ultra"])
def bn_random(request: pytest.FixtureRequest) -> nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorms_(featherface.build_model(request.param), seed=1)


def test_no_batchnorm_left_and_original_untouched(bn_random: nn.Module) -> None:
    before = copy.deepcopy(bn_random.state_dict())
    n_bn = count_batchnorms(bn_random)
    fused = fuse_for_inference(bn_random)
    assert n_bn > 40 and count_batchnorms(fused) == 0
    assert not fused.training and not any(p.requires_grad for p in fused.parameters())
    after = bn_random.state_dict()
    assert count_batchnorms(bn_random) == n_bn and before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    if bn_random.config.arch == "featherface_v1":  # the deformable SSH convs gained a folded bias
        dcn = [m for m in fused.modules() if isinstance(m, DeformConvBN)]
        assert len(dcn) == 15 and all(isinstance(m.conv, FusedModulatedDeformConv2d) for m in dcn)
        assert all(isinstance(m.bn, nn.Identity) for m in dcn)


@pytest.mark.parametrize("size", SIZES)
def test_fused_outputs_match_float32(bn_random: nn.Module, size: tuple[int, int]) -> None:
    fused = fuse_for_inference(bn_random)
    x = _smooth_input(2, *size, seed=size[0])
    with torch.no_grad():
        ref, out = bn_random.eval()(x), fused(x)
    assert ref[0].shape[0] == 2 and all(r.shape == o.shape for r, o in zip(ref, out))
    assert _max_diff(ref, out) <= 1e-4


@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
def test_fusion_is_exact_in_float64(name: str) -> None:
    """With weights that make the outputs depend strongly on the input, and in float64 so that
    rounding cannot hide a mistake: the fused network computes the same function."""
    net = make_realistic_(featherface.build_model(name), seed=3).double()
    fused = fuse_for_inference(net)
    assert count_batchnorms(fused) == 0 and next(fused.parameters()).dtype == torch.float64
    for i, (h, w) in enumerate([(75, 131), (40, 33)]):
        x = _smooth_input(2, h, w, seed=10 + i, dtype=torch.float64)
        with torch.no_grad():
            ref, out = net(x), fused(x)
            other = net(_smooth_input(2, h, w, seed=20 + i, dtype=torch.float64))
        assert _max_diff(ref, out) <= 1e-9
        assert _max_diff(ref, other) > 0.1  # the check is not vacuous: outputs depend on the input


def test_a_bn_that_follows_no_conv_is_left_alone() -> None:
    net = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    randomize_batchnorms_(net, seed=0)
    fused = fuse_for_inference(net)
    assert isinstance(fused[1], nn.BatchNorm2d) and isinstance(fused[3], nn.Identity)
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        assert torch.allclose(net(x), fused(x), atol=1e-5)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_bgr(ROOT / "examples" / "images" / "astronaut.png")


def _match(a: list[featherface.Detection], b: list[featherface.Detection], tol: float = 1e-3) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert abs(x.score - y.score) <= tol
        assert np.abs(np.subtract(x.box, y.box)).max() <= tol * 10  # pixels
        assert np.abs(np.subtract(x.landmarks, y.landmarks)).max() <= tol * 10


@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
def test_fused_detector_matches_unfused(name: str, astronaut: np.ndarray) -> None:
    net = make_realistic_(featherface.build_model(name), seed=0)
    opts = featherface.DetectorOptions(score_threshold=0.9, max_detections=30)
    plain = featherface.FaceDetector(net, net.config, device="cpu", options=opts, fuse=False)
    fast = featherface.FaceDetector(net, net.config, device="cpu", options=opts)
    assert plain.runner.module is net and fast.runner.module is not net
    assert count_batchnorms(fast.runner.module) == 0 and fast.network is net
    assert fast.runner.channels_last and not plain.runner.channels_last
    small = np.ascontiguousarray(astronaut[::3, ::2])  # 171 x 256
    for img in (astronaut, small):
        _match(plain.detect(img, color="bgr"), fast.detect(img, color="bgr"))
    batch = fast.detect_batch([astronaut, small, astronaut[:, ::-1]], color="bgr")
    assert [len(r) for r in batch] == [len(fast.detect(i, color="bgr")) for i in (astronaut, small, astronaut[:, ::-1])]


class _ThreadSpy(torch.nn.Module):
    """Records the torch thread count its forward runs with."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        self.seen.append(torch.get_num_threads())
        return self.inner(x)


def test_load_model_engine_options() -> None:
    threads = torch.get_num_threads()
    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu", fuse=False, channels_last=False,
                                 num_threads=1)
    assert torch.get_num_threads() == threads and det.num_threads == 1  # nothing process-wide at load
    assert det.runner.module is det.network and not det.runner.channels_last
    det = featherface.load_model("v2_ultra", pretrained=False, device="cpu")
    assert det.backend == "torch" and count_batchnorms(det.runner.module) == 0
    assert count_batchnorms(det.network) > 0  # the loaded network stays as it is
    for bad in ({"num_threads": 0}, {"num_threads": 1.5}, {"backend": "tensorrt"}, {"onnx_path": "x.onnx"}):
        with pytest.raises(ValueError):
            featherface.load_model("v2_ultra", pretrained=False, device="cpu", **bad)


class _Gate(nn.Module):
    """conv -> BN whose ``fuse()`` returns a replacement module (not ``self``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def fuse(self) -> nn.Module:
        fused = copy.deepcopy(self.conv)
        from featherface._models.fuse import fold_bn_into_conv

        fold_bn_into_conv(fused, self.bn)
        return fused


class _Outer(nn.Module):
    """Owns a shared gate twice and a plain Sequential; its ``fuse()`` sees its children already fused."""

    def __init__(self) -> None:
        super().__init__()
        gate = _Gate()
        self.a, self.b = gate, gate
        self.seq = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU())
        self.seen: list[type] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(self.b(self.a(x)))

    def fuse(self) -> nn.Module:
        self.seen = [type(self.a), type(self.seq[1])]
        return self


def test_walker_calls_fuse_children_first_and_keeps_shared_modules_shared() -> None:
    net = randomize_batchnorms_(_Outer().eval(), seed=2)
    fused = fuse_for_inference(net)
    assert fused.seen == [nn.Conv2d, nn.Identity] and net.seen == []  # children first; original untouched
    assert fused.a is fused.b and isinstance(fused.a, nn.Conv2d) and count_batchnorms(fused) == 0
    assert net.a is net.b and isinstance(net.a, _Gate) and count_batchnorms(net) == 2
    x = torch.randn(2, 3, 8, 9)
    with torch.no_grad():
        assert torch.allclose(net(x), fused(x), atol=1e-5)


def test_threads_are_set_per_call_and_restored() -> None:
    from featherface._engines.torch_runner import SINGLE_THREAD_MAX_PIXELS

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for num_threads, small, large in ((None, 1, 2), (2, 2, 2), (1, 1, 1)):
            det = featherface.load_model("v2_ultra", pretrained=False, device="cpu", num_threads=num_threads)
            spy = _ThreadSpy(det.runner.module)
            det.runner.module = spy
            det.detect(np.zeros((240, 320, 3), np.uint8))
            side = int((SINGLE_THREAD_MAX_PIXELS * 1.2) ** 0.5)
            det.detect(np.zeros((side, side, 3), np.uint8), max_size=None)
            assert spy.seen == [small, large], num_threads
            assert torch.get_num_threads() == 2  # restored after each call
    finally:
        torch.set_num_threads(threads)
