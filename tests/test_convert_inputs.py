"""``featherface convert-reference`` on every kind of input, and the authors' key names in ``load_model``.

The authors' repository (github fokouarnaud/FeatherFace) has had four different files at
``weights/mobilenet0.25_Final.pth``; only the one at commit 17aa64d is FeatherFace V1. The other
networks are rebuilt here as small synthetic state dicts with their key names and head widths (no
file from that repository is committed), saved as ``.pth`` and ``.safetensors`` in ``tmp_path``.
Every input must give exit status 1 (2 for a path that is not a file) and one error line, never a
traceback. The real V1 file is exercised through the safetensors reference in ``FEATHERFACE_SHARED``
(re-saved as a ``.pth`` the way the authors publish it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import featherface
from featherface import cli
from featherface._weights.convert import (
    REFERENCE_V1_COMMIT,
    REFERENCE_V1_SHA256,
    REFERENCE_V1_URL,
    _map_key,
    convert_reference_v1_state_dict,
    read_reference_state_dict,
)
from featherface._weights.files import has_authors_key_names, save_weights_folder
from featherface._weights.registry import get_config, get_spec
from featherface.errors import ConversionError, WeightsError
from tests.conftest import shared_file

REFERENCE = "data/weights/featherface_v1_reference.safetensors"


@pytest.fixture(autouse=True)
def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATHERFACE_CACHE", str(tmp_path / "cache"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("featherface: error: ") and "Traceback" not in err, err
    return lines[0]


def _bn(prefix: str, n: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": torch.ones(n), f"{prefix}.bias": torch.zeros(n),
            f"{prefix}.running_mean": torch.zeros(n), f"{prefix}.running_var": torch.ones(n),
            f"{prefix}.num_batches_tracked": torch.tensor(0)}


def _heads(channels: int) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(3):
        for head, k in (("ClassHead", 4), ("BboxHead", 8), ("LandmarkHead", 20)):
            out[f"{head}.{i}.conv1x1.weight"] = torch.zeros(k, channels, 1, 1)
            out[f"{head}.{i}.conv1x1.bias"] = torch.zeros(k)
    return out


def older_retinaface_layout() -> dict[str, torch.Tensor]:
    """The earliest file's layout: FPN + SSH with plain convs (``ssh1.conv3X3.0.weight``), 64-ch heads."""
    state = {"body.stage1.0.0.weight": torch.zeros(8, 3, 3, 3), **_bn("body.stage1.0.1", 8),
             "fpn.output1.0.weight": torch.zeros(64, 64, 1, 1), **_bn("fpn.output1.1", 64)}
    for level in (1, 2, 3):
        state[f"ssh{level}.conv3X3.0.weight"] = torch.zeros(32, 64, 3, 3)
        state.update(_bn(f"ssh{level}.conv3X3.1", 32))
    return {**state, **_heads(64)}


def newer_variant_layout() -> dict[str, torch.Tensor]:
    """The later files' layout: BiFPN + DCN SSH without the CBAM modules, 56-channel heads."""
    state = {"body.stage1.0.0.weight": torch.zeros(8, 3, 3, 3), **_bn("body.stage1.0.1", 8),
             "bifpn.0.p3_w1": torch.ones(2)}
    for level in (1, 2, 3):
        state[f"ssh{level}.conv3X3.0.offset_conv.weight"] = torch.zeros(18, 56, 3, 3)
        state[f"ssh{level}.conv3X3.0.regular_conv.weight"] = torch.zeros(28, 56, 3, 3)
        state.update(_bn(f"ssh{level}.conv3X3.1", 28))
    return {**state, **_heads(56)}


def _save(state: dict, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def _points_at_v1(line: str) -> None:
    assert REFERENCE_V1_COMMIT[:7] in line and REFERENCE_V1_SHA256 in line and REFERENCE_V1_URL in line, line


# -- the authors' other networks --------------------------------------------------------------------


def test_plain_conv_ssh_keys_are_unmapped_not_a_crash() -> None:
    # used to raise AttributeError: 'NoneType' object has no attribute 'split'
    assert _map_key("ssh1.conv3X3.0.weight") is None
    assert _map_key("ssh2.conv5X5_1.1.offset_conv.weight") is None
    assert _map_key("ssh1.conv3X3.0.regular_conv.weight") == "context.0.branch_a.conv.weight"
    assert _map_key("ssh3.conv7x7_3.1.running_var") == "context.2.branch_c2.bn.running_var"
    with pytest.raises(ConversionError, match="older network"):
        convert_reference_v1_state_dict(older_retinaface_layout())
    with pytest.raises(ConversionError, match="unmapped source key 'ssh1.conv3X3.0.weight'"):
        convert_reference_v1_state_dict({"ssh1.conv3X3.0.weight": torch.zeros(1)})


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("layout, words", [
    (older_retinaface_layout, ("older network", "RetinaFace-MobileNet-0.25", "64-channel heads")),
    (newer_variant_layout, ("newer FeatherFace variant", "56-channel heads")),
])
def test_other_authors_networks_are_named_and_v1_is_pointed_at(capsys, tmp_path, suffix, layout, words) -> None:
    state = layout()
    source = _save(state, tmp_path / f"mobilenet0.25_Final{suffix}")
    code, out, err = run(capsys, "convert-reference", str(source), str(tmp_path / "out"))
    assert code == 1 and out == ""
    line = one_line(err)
    for word in words:
        assert word in line, line
    assert f"{len(state)} keys" in line
    _points_at_v1(line)
    assert not (tmp_path / "out").exists()


def test_thop_buffers_and_module_prefix_do_not_hide_the_variant(capsys, tmp_path) -> None:
    state = {f"module.{k}": v for k, v in newer_variant_layout().items()}
    state.update({"total_ops": torch.zeros(1), "module.ClassHead.total_params": torch.zeros(1)})
    code, _, err = run(capsys, "convert-reference", str(_save(state, tmp_path / "w.pth")))
    assert code == 1 and "newer FeatherFace variant" in one_line(err)


def test_checkpoint_dict_wrapping_a_state_dict_is_unwrapped(tmp_path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": older_retinaface_layout()}, path)
    assert set(read_reference_state_dict(path)) == set(older_retinaface_layout())


def _junk_files(tmp_path: Path) -> dict[str, Path]:
    files = {}

    def put(name: str, data: bytes) -> None:
        files[name] = tmp_path / name
        files[name].write_bytes(data)

    put("empty.pth", b"")
    put("empty.safetensors", b"")
    put("random.pth", bytes(range(256)) * 20)
    put("text.safetensors", b"not weights at all\n")
    put("config.json", json.dumps({"a": 1}).encode())
    put("huge_header.safetensors", (10**15).to_bytes(8, "little") + b"{}")
    put("bad_header.safetensors", (20).to_bytes(8, "little") + b"{not json at all....")
    put("pickle.pth", b"\x80\x04\x95garbage")
    valid = tmp_path / "valid.pth"
    torch.save(newer_variant_layout(), valid)
    put("truncated.pth", valid.read_bytes()[:300])
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    files["list.pth"] = tmp_path / "list.pth"
    torch.save({"a": torch.zeros(1), "lr": 0.1}, tmp_path / "mixed.pth")
    files["mixed.pth"] = tmp_path / "mixed.pth"
    torch.save({}, tmp_path / "empty_dict.pth")
    files["empty_dict.pth"] = tmp_path / "empty_dict.pth"
    files["unrelated.safetensors"] = _save({"foo.weight": torch.zeros(3)}, tmp_path / "unrelated.safetensors")
    files["featherface_folder_file.safetensors"] = _save(
        {k: v for k, v in featherface.build_model("v2_ultra").state_dict().items()},
        tmp_path / "featherface_folder_file.safetensors")
    return files


def test_no_traceback_on_any_input(capsys, tmp_path) -> None:
    for name, path in _junk_files(tmp_path).items():
        code, out, err = run(capsys, "convert-reference", str(path), str(tmp_path / f"out-{name}"))
        assert code == 1, (name, err)
        line = one_line(err)
        assert str(path) in line, line
        assert out == "", (name, out)
    code, _, err = run(capsys, "convert-reference", str(tmp_path))  # a folder
    assert code == 2 and "not a file" in one_line(err)
    code, _, err = run(capsys, "convert-reference", str(tmp_path / "missing.pth"))
    assert code == 2 and "no such file" in one_line(err)


def test_library_reader_raises_conversion_errors_only(tmp_path) -> None:
    for name, path in _junk_files(tmp_path).items():
        try:
            featherface._weights.convert.load_reference_v1(path)
        except ConversionError as exc:
            assert str(path) in str(exc), name
        else:
            pytest.fail(f"{name} was accepted")


# -- the authors' V1 file itself (through the shared safetensors copy) -----------------------------


@pytest.fixture(scope="module")
def reference(shared: Path) -> Path:
    return shared_file(shared, REFERENCE)


def test_authors_pth_converts_like_its_safetensors_copy(capsys, tmp_path, reference) -> None:
    """The authors publish a torch .pth with thop buffers; convert-reference reads it directly."""
    state = load_file(str(reference))
    with_thop = {**state, "total_ops": torch.zeros(1, dtype=torch.float64),
                 "ClassHead.total_params": torch.zeros(1, dtype=torch.float64)}
    pth = tmp_path / "mobilenet0.25_Final.pth"
    torch.save(with_thop, pth)
    assert pth.read_bytes()[:4] == b"PK\x03\x04"  # the zip format of torch.save, like the authors' file
    code, out, err = run(capsys, "convert-reference", str(pth), str(tmp_path / "from_pth"))
    assert code == 0, err
    code, out2, err = run(capsys, "convert-reference", str(reference), str(tmp_path / "from_st"))
    assert code == 0, err
    a = load_file(str(tmp_path / "from_pth" / "model.safetensors"))
    b = load_file(str(tmp_path / "from_st" / "model.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert "source recognised by its sha256: FeatherFace V1" in out2  # the shared copy is a known file


def test_load_model_with_authors_file_says_convert_reference(capsys, tmp_path, reference) -> None:
    with pytest.raises(WeightsError) as info:
        featherface.load_model("v1", weights=reference)
    message = str(info.value)
    assert f"featherface convert-reference {reference}" in message and "missing" not in message
    code, _, err = run(capsys, "detect", str(reference), "--model", "v1", "--weights", str(reference))
    assert code == 1 and "featherface convert-reference" in one_line(err)


# -- load_model and the authors' key names (no shared data needed) ---------------------------------


def test_load_model_names_convert_reference_for_authors_keys(tmp_path) -> None:
    authors = _save(newer_variant_layout(), tmp_path / "authors.safetensors")
    with pytest.raises(WeightsError, match=r"featherface convert-reference .*authors\.safetensors"):
        featherface.load_model("v1", weights=authors)
    with pytest.raises(WeightsError, match="convert-reference"):
        featherface.load_model("v1", weights=_save(newer_variant_layout(), tmp_path / "authors.pth"))
    # featherface's own weights of another model are not mistaken for the authors'
    folder = tmp_path / "v2"
    save_weights_folder(featherface.build_model("v2_ultra"), get_config("v2_ultra"), folder)
    with pytest.raises(WeightsError) as info:
        featherface.load_model("v1", weights=folder / "model.safetensors")
    assert "missing" in str(info.value) and "convert-reference" not in str(info.value)


def test_authors_key_detector() -> None:
    assert has_authors_key_names(older_retinaface_layout())
    assert has_authors_key_names([f"module.{k}" for k in newer_variant_layout()])
    assert not has_authors_key_names(featherface.build_model("v1").state_dict())
    assert not has_authors_key_names(featherface.build_model("v2_ultra").state_dict())


def test_registry_records_where_v1_comes_from() -> None:
    ref = get_spec("v1").reference
    assert ref is not None
    assert ref.url == f"https://raw.githubusercontent.com/fokouarnaud/FeatherFace/{ref.commit}/{ref.path}"
    assert len(ref.commit) == 40 and len(ref.sha256) == 64
    assert (ref.commit, ref.sha256) == (REFERENCE_V1_COMMIT, REFERENCE_V1_SHA256)
