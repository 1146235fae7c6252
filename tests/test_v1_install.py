"""Installing the authors' V1 weights with ``featherface convert-reference`` and loading them offline.

The v1 weights are the FeatherFace authors' release (MIT) and are not shipped: ``featherface
convert-reference PATH`` converts them and installs them in the local store,
``$FEATHERFACE_CACHE/installed/v1``, from which ``load_model("v1")`` loads with a verified sha256.
Every test points ``FEATHERFACE_CACHE`` at ``tmp_path`` (nothing touches the real home) and makes
any Hub download fail, so a load that reached for the network would be noticed.

The tests that convert need the reference file from ``FEATHERFACE_SHARED``
(``data/weights/featherface_v1_reference.safetensors``): skipped with the reason shown when the
variable is unset, failed when it is set and the file is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import save_file

import featherface
from featherface import cli, errors
from featherface._weights import files as wfiles
from featherface._weights import store as wstore
from featherface._weights.files import sha256_file
from featherface.errors import ConfigMismatchError, WeightsError, WeightsIntegrityError
from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.png"
REFERENCE = "data/weights/featherface_v1_reference.safetensors"


@pytest.fixture(autouse=True)
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private featherface cache in ``tmp_path``; any Hub download raises."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FEATHERFACE_CACHE", str(cache))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Hugging Face Hub must not be used for installed weights")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    return cache / "installed" / "v1"


@pytest.fixture(scope="module")
def reference(shared: Path) -> Path:
    return shared_file(shared, REFERENCE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_v1_before_install_says_how_to_get_the_weights(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    with pytest.raises(WeightsError) as info:
        featherface.load_model("v1", device="cpu", local_files_only=True)
    message = str(info.value)
    assert "convert-reference" in message
    assert "\n" not in message  # the CLI prints the first line only
    for needle in ("authors' release", "not shipped", "github.com/fokouarnaud/FeatherFace",
                   "weights/mobilenet0.25_Final.pth", "commit 17aa64d",
                   "78cee1c6b825d155d2778e39c27b39b2edb4c45249bed34ffe8a5a80f65f6a00", "head is another network",
                   "'featherface convert-reference PATH'", 'load_model("v1") works offline', str(store)):
        assert needle in message, needle
    assert isinstance(info.value, errors.WeightsNotInstalledError)

    code, _, err = run(capsys, "detect", str(ASTRONAUT), "--model", "v1")
    assert code == cli.EXIT_FAILURE
    assert err.startswith("featherface: error: ") and len(err.strip().splitlines()) == 1
    assert "featherface convert-reference PATH" in err and "--weights" in err and "--random-weights" in err
    assert not store.parent.exists()  # a failed load creates nothing


def test_install_then_load_offline_finds_the_astronaut(
    capsys: pytest.CaptureFixture[str], reference: Path, store: Path
) -> None:
    code, out, err = run(capsys, "convert-reference", str(reference))
    assert code == 0, err
    assert str(store) in out and 'featherface.load_model("v1")' in out
    assert sorted(p.name for p in store.iterdir()) == ["SOURCE.json", "config.json", "model.safetensors"]
    assert [p.name for p in store.parent.iterdir()] == ["v1"]  # no temporary folder left behind
    record = json.loads((store / "SOURCE.json").read_text())
    assert record["source_file"] == reference.name
    assert record["source_sha256"] == sha256_file(reference)
    assert record["model_sha256"] == sha256_file(store / "model.safetensors")
    assert "MIT" in record["license"] and "fokouarnaud/FeatherFace" in record["license"]

    det = featherface.load_model("v1", device="cpu", local_files_only=True)
    assert det.weights_source == "installed"
    faces = det.detect(ASTRONAUT)
    assert faces and faces[0].score > 0.9, [f.score for f in faces]

    # `featherface models` says so
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    v1 = {r["name"]: r for r in json.loads(out)}["v1"]
    assert v1["weights"] == "installed" and "MIT" in v1["license"]

    # installing again replaces the copy in place
    assert run(capsys, "convert-reference", str(reference), "--install")[0] == 0
    assert [p.name for p in store.parent.iterdir()] == ["v1"]
    assert featherface.load_model("v1", device="cpu").weights_source == "installed"


def test_tampered_install_raises_integrity_error(
    capsys: pytest.CaptureFixture[str], reference: Path, store: Path
) -> None:
    assert run(capsys, "convert-reference", str(reference))[0] == 0
    model_file = store / "model.safetensors"
    data = bytearray(model_file.read_bytes())
    for i in range(len(data) - 64, len(data)):  # tensor bytes: still a valid safetensors file
        data[i] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="convert-reference"):
        featherface.load_model("v1", device="cpu", local_files_only=True)

    # a config that is not v1's is refused too
    assert run(capsys, "convert-reference", str(reference))[0] == 0
    config = json.loads((store / "config.json").read_text())
    (store / "config.json").write_text(json.dumps({**config, "width": 32}))
    with pytest.raises(ConfigMismatchError):
        featherface.load_model("v1", device="cpu")


def test_failed_install_keeps_the_previous_copy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, reference: Path, store: Path
) -> None:
    def crash(model: object, config: object, folder: Path) -> str:
        Path(folder, "model.safetensors").write_bytes(b"half written")
        raise OSError("disk full")

    save_weights_folder = wfiles.save_weights_folder
    monkeypatch.setattr(wstore, "save_weights_folder", crash)
    assert run(capsys, "convert-reference", str(reference))[0] == cli.EXIT_FAILURE
    assert not store.exists() and list(store.parent.iterdir()) == []  # nothing half-installed
    monkeypatch.setattr(wstore, "save_weights_folder", save_weights_folder)

    assert run(capsys, "convert-reference", str(reference))[0] == 0
    before = sha256_file(store / "model.safetensors")
    monkeypatch.setattr(wstore, "save_weights_folder", crash)
    assert run(capsys, "convert-reference", str(reference))[0] == cli.EXIT_FAILURE
    assert [p.name for p in store.parent.iterdir()] == ["v1"]
    assert sha256_file(store / "model.safetensors") == before
    assert featherface.load_model("v1", device="cpu").weights_source == "installed"


def test_source_out_form_writes_a_folder_without_the_train_package(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, reference: Path, store: Path,
    tmp_path: Path,
) -> None:
    # convert-reference belongs to the base install: it works even when featherface.train is unavailable
    for name in ("featherface.train", "featherface.train.cli"):
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "reference_v1"
    code, stdout, err = run(capsys, "convert-reference", str(reference), str(out))
    assert code == 0, err
    assert stdout.startswith(f"wrote {out} (model.safetensors sha256 ")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert not store.exists()  # OUT alone does not install
    det = featherface.load_model(weights=out, device="cpu")
    assert det.name == "v1" and det.weights_source == "explicit"

    # OUT with --install does both
    code, stdout, err = run(capsys, "convert-reference", str(reference), str(tmp_path / "again"), "--install")
    assert code == 0, err
    assert (tmp_path / "again" / "model.safetensors").is_file() and wstore.is_installed("v1")
    assert sha256_file(tmp_path / "again" / "model.safetensors") == sha256_file(store / "model.safetensors")


def test_bad_sources_are_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, store: Path) -> None:
    code, _, err = run(capsys, "convert-reference", str(tmp_path / "nope.safetensors"))
    assert code == cli.EXIT_USAGE and "nope.safetensors" in err

    other = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(other))
    code, _, err = run(capsys, "convert-reference", str(other))
    assert code == cli.EXIT_FAILURE and len(err.strip().splitlines()) == 1
    assert "not the authors' V1 weights" in err and "'fc.weight'" in err
    assert not store.exists()
