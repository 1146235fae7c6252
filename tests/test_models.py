"""Registry, configs and both networks: exact parameter counts, shapes, switches, trace and export."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

import featherface
from featherface._models import count_parameters, thop_equivalent_parameters
from featherface._models.config import ModelConfig, PriorConfig, V2UltraTechniques
from featherface._ops.priors import num_priors
from featherface._weights.registry import build_model, get_config, get_spec, list_models


def test_list_models_and_unknown_name() -> None:
    assert list_models() == ["v1", "v2_ultra"]
    assert featherface.list_models() == list_models()
    with pytest.raises(ValueError, match="known models: v1, v2_ultra"):
        build_model("v3")
    with pytest.raises(ValueError, match="known models"):
        get_spec("V1")


def test_v1_parameter_counts() -> None:
    m = build_model("v1")
    assert count_parameters(m) == 592_371
    assert thop_equivalent_parameters(m) == 488_661
    sd = m.state_dict()
    assert len(sd) == 587
    bn = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert len(bn) == 74
    assert sum(b.running_mean.numel() + b.running_var.numel() + 1 for b in bn) == 9_078


def test_v1_module_breakdown_matches_spec() -> None:
    m = build_model("v1")
    p = lambda mod: sum(t.numel() for t in mod.parameters())  # noqa: E731
    assert [p(getattr(m.backbone, s)) for s in ("stage1", "stage2", "stage3")] == [10_128, 99_392, 103_552]
    assert [p(a) for a in m.backbone_attention] == [680, 2_284, 8_564]
    assert [p(layer) for layer in m.bifpn.layers] == [73_674, 19_466, 19_466]
    assert sum(p(a) for a in m.neck_attention) == 2_040
    assert [p(s) for s in m.context] == [77_655] * 3
    assert [p(s) for s in m.shuffle] == [4_640] * 3
    assert sum(p(h.cls) for h in m.heads) == 780
    assert sum(p(h.box) for h in m.heads) == 1_560
    assert sum(p(h.ldm) for h in m.heads) == 3_900


def test_v2_ultra_parameter_count() -> None:
    m = build_model("v2_ultra")
    # 244,483 (the fork's registered count) + 40 for the now-registered sharing gate
    assert count_parameters(m) == 244_523
    assert count_parameters(m) <= 250_000
    assert thop_equivalent_parameters(m) == 244_523  # no DCN, no thop-invisible weights
    p = lambda mod: sum(t.numel() for t in mod.parameters())  # noqa: E731
    assert p(m.backbone) == 213_072
    assert p(m.backbone_attention) == 3_684
    assert p(m.bifpn) == 10_326
    assert p(m.neck_attention) == 580
    assert [p(s) for s in m.context] == [3_435] * 3
    assert sum(p(h) for h in m.heads) == 6_516
    assert p(m.gate) == 40


@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
@pytest.mark.parametrize("size", [(640, 640), (405, 700), (33, 17), (1, 1)])
def test_forward_shapes(name: str, size: tuple[int, int]) -> None:
    m = build_model(name).eval()
    n = num_priors(size, m.config.priors)
    with torch.no_grad():
        loc, logits, ldm = m(torch.randn(2, 3, *size))
    assert loc.shape == (2, n, 4) and logits.shape == (2, n, 2) and ldm.shape == (2, n, 10)
    assert torch.isfinite(loc).all() and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
def test_batch_items_are_independent(name: str) -> None:
    """In eval mode the network treats each image on its own (no batch-dependent branch)."""
    torch.manual_seed(0)
    m = build_model(name).eval()
    x = torch.randn(3, 3, 64, 96)
    with torch.no_grad():
        full = m(x)
        single = m(x[1:2])
    for a, b in zip(full, single):
        assert torch.allclose(a[1:2], b, atol=1e-5)


def test_v2_ultra_switches() -> None:
    base = get_config("v2_ultra")
    x = torch.randn(1, 3, 64, 64) * 50  # the scale of mean-subtracted pixels
    torch.manual_seed(0)
    ref = build_model(base).eval()
    with torch.no_grad():
        ref_out = ref(x)[1]
    for field in dataclasses.fields(V2UltraTechniques):
        flipped = not getattr(base.techniques, field.name)  # the registry has some on, some off
        tech = dataclasses.replace(base.techniques, **{field.name: flipped})
        m = build_model(base.replace(techniques=tech)).eval()
        m.load_state_dict(ref.state_dict(), strict=False)
        with torch.no_grad():
            out = m(x)[1]
        assert out.shape == ref_out.shape
        assert (out - ref_out).abs().max() > 1e-4, f"switching {field.name} to {flipped} changed nothing"
        expected = 244_483 if (field.name == "dynamic_weight_sharing" and not flipped) else 244_523
        assert count_parameters(m) == expected


def test_v2_ultra_gate_is_differentiable_and_registered() -> None:
    torch.manual_seed(0)
    m = build_model("v2_ultra").train()
    loc, logits, ldm = m(torch.randn(2, 3, 64, 64))
    (loc.sum() + logits.sum() + ldm.sum()).backward()
    assert m.gate.score.weight.grad is not None and m.gate.score.weight.grad.abs().sum() > 0
    assert m.gate.gamma.grad is not None and m.gate.gamma.grad.abs().sum() > 0
    assert "gate.score.weight" in m.state_dict() and "gate.gamma" in m.state_dict()
    # every parameter receives a gradient (nothing is dead or unregistered)
    dead = [n for n, p in m.named_parameters() if p.grad is None]
    assert dead == []


def test_config_round_trip_and_validation() -> None:
    for name in list_models():
        cfg = get_config(name)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    d = get_config("v1").to_dict()
    with pytest.raises(ValueError, match="unknown config keys"):
        ModelConfig.from_dict({**d, "depth": 3})
    with pytest.raises(ValueError, match="missing config keys"):
        ModelConfig.from_dict({k: v for k, v in d.items() if k != "arch"})
    with pytest.raises(ValueError, match="unknown arch"):
        ModelConfig.from_dict({**d, "arch": "resnet"})
    with pytest.raises(ValueError, match="techniques only apply"):
        get_config("v1").replace(techniques=V2UltraTechniques())
    with pytest.raises(ValueError, match="multiple of 4"):
        get_config("v1").replace(width=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_config("v1").width = 8  # type: ignore[misc]


def test_heads_follow_prior_config() -> None:
    cfg = get_config("v2_ultra").replace(
        priors=PriorConfig(min_sizes=((16,), (64, 128, 96), (256, 512)))
    )
    m = build_model(cfg).eval()
    with torch.no_grad():
        loc, _, _ = m(torch.randn(1, 3, 64, 64))
    assert loc.shape[1] == num_priors((64, 64), cfg.priors) == 8 * 8 * 1 + 4 * 4 * 3 + 2 * 2 * 2


@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
def test_jit_trace(name: str) -> None:
    m = build_model(name).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        traced = torch.jit.trace(m, x)
        ref = m(x)
        out = traced(x)
    for a, b in zip(ref, out):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", ["v1", "v2_ultra"])
def test_onnx_export_runs_in_onnxruntime(name: str) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime comes with the onnx extra")
    pytest.importorskip("onnx", reason="onnx comes with the onnx extra")
    torch.manual_seed(0)
    m = build_model(name).eval()
    buf = io.BytesIO()
    torch.onnx.export(
        m, (torch.randn(1, 3, 64, 96),), buf, input_names=["input"],
        output_names=["loc", "logits", "landmarks"], opset_version=17, dynamo=False,
        dynamic_axes={"input": {0: "b", 2: "h", 3: "w"}},
    )
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 75, 131)
    with torch.no_grad():
        ref = m(x)
    out = sess.run(None, {"input": x.numpy()})
    for a, b in zip(out, ref):
        assert abs(a - b.numpy()).max() < 1e-4
