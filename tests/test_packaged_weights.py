"""The weights shipped inside the package: registry metadata matches the files, and they find faces.

These tests need no network and no shared data: they exercise exactly what a fresh offline
``pip install`` gets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import featherface
from featherface._models import count_parameters
from featherface._models.config import ModelConfig
from featherface._weights.files import sha256_file
from featherface._weights.registry import get_spec, list_models
from featherface._weights.resolve import packaged_weights_dir

ASTRONAUT = Path(__file__).parents[1] / "examples" / "images" / "astronaut.png"
# Eileen Collins' face in scikit-image's astronaut photo, annotated by hand (x1, y1, x2, y2)
ASTRONAUT_FACE = (179.0, 55.0, 268.0, 177.0)

PACKAGED = [n for n in list_models() if get_spec(n).weights is not None and get_spec(n).weights.packaged]


def test_default_model_is_packaged() -> None:
    assert "v2_ultra" in PACKAGED


@pytest.mark.parametrize("name", PACKAGED)
def test_registry_matches_packaged_files(name: str) -> None:
    w = get_spec(name).weights
    assert w is not None and w.packaged
    folder = packaged_weights_dir() / w.packaged
    assert sha256_file(folder / w.filename) == w.sha256
    assert ModelConfig.from_dict(json.loads((folder / "config.json").read_text())) == get_spec(name).config
    det = featherface.load_model(name, device="cpu", local_files_only=True)
    assert det.weights_source == "packaged"
    assert count_parameters(det.network) == w.num_params
    card = (folder / "README.md").read_text()
    assert "non-commercial research" in card and w.sha256 in card
    for key in ("easy", "medium", "hard"):
        assert f"{100 * w.metrics[key]:.2f}" in card  # the card shows the registered, measured numbers
    assert w.metrics_protocol


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_weights_find_the_astronaut(name: str) -> None:
    torch.manual_seed(0)
    det = featherface.load_model(name, device="cpu", local_files_only=True)
    faces = det.detect(ASTRONAUT)
    assert faces, "no face found in the astronaut photo"
    best = faces[0]
    assert best.score > 0.5
    assert _iou(best.box, ASTRONAUT_FACE) >= 0.5
    x1, y1, x2, y2 = best.box
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in best.landmarks)
    (lx, ly), (rx, ry) = best.landmarks[0], best.landmarks[1]
    assert lx < rx  # left eye (image left) before right eye
    assert max(ly, ry) < best.landmarks[3][1]  # eyes above the mouth corners
    assert len([f for f in faces if f.score > 0.5]) == 1  # one person in the photo


def test_readme_main_command_runs_offline(tmp_path: Path) -> None:
    """The README's first command: detect on the shipped image with the packaged default weights."""
    env = {"HF_HUB_OFFLINE": "1", "PATH": "", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run(
        [sys.executable, "-m", "featherface", "detect", str(ASTRONAUT), "--save-dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "astronaut.png: 1 face" in out.stdout
    assert (tmp_path / "out" / "astronaut.jpg").stat().st_size > 10_000


def test_weights_folders_are_byte_reproducible(tmp_path: Path) -> None:
    """The same weights always export to the same sha256 (registered hashes stay reproducible)."""
    from featherface import save_weights_folder

    torch.manual_seed(1)
    model = featherface.build_model("v2_ultra")
    hashes = {save_weights_folder(model, model.config, tmp_path / str(i)) for i in range(3)}
    assert len(hashes) == 1


def test_explicit_weights_checked_against_given_sha256(tmp_path: Path) -> None:
    from featherface import save_weights_folder
    from featherface.errors import WeightsIntegrityError

    model = featherface.build_model("v2_ultra")
    sha = save_weights_folder(model, model.config, tmp_path / "w")
    assert featherface.load_model(weights=tmp_path / "w", sha256=sha, device="cpu").weights_source == "explicit"
    with pytest.raises(WeightsIntegrityError, match="does not match"):
        featherface.load_model(weights=tmp_path / "w", sha256="0" * 64, device="cpu")


BLANK_SIZES = [(480, 640), (512, 512), (640, 600), (1080, 1920), (240, 320)]


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_weights_find_no_face_on_blank_frames(name: str) -> None:
    """Black, grey and white frames of several sizes hold no face at the default threshold.

    (The first packaged weights put a 0.63-0.97 box in the bottom-left corner of every one of them.)
    """
    import numpy as np

    det = featherface.load_model(name, device="cpu", local_files_only=True)
    for h, w in BLANK_SIZES:
        for level in (0, 127, 255):
            frame = np.full((h, w, 3), level, dtype=np.uint8)
            faces = det.detect(frame)
            assert faces == [], f"{len(faces)} face(s) on a {w}x{h} frame of level {level}: {faces[:2]}"


# Known gaps of the packaged weights, kept as strict expected failures: the test turns red the day
# weights that fix the gap are packaged, and the marker must then go (open weights issue).
KNOWN_GAP = pytest.mark.xfail(strict=True, reason="known gap of the packaged v2_ultra weights (weights issue)")


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_weights_find_no_face_on_noise_frames(name: str) -> None:
    """Uniform-noise frames (a camera with its lens covered, a broken stream) hold no face either.

    (The weights packaged before, sha256 c2bdb941..., put a box on 1 of these 10 frames.)
    """
    import numpy as np

    det = featherface.load_model(name, device="cpu", local_files_only=True)
    rng = np.random.default_rng(0)
    for k in range(10):
        frame = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
        faces = det.detect(frame)
        assert faces == [], f"noise frame {k}: {faces[:2]}"


@pytest.mark.parametrize("name", PACKAGED)
@pytest.mark.parametrize("max_size", [pytest.param(None, marks=KNOWN_GAP), 1024])
def test_large_real_size_input_gets_its_one_face_and_nothing_else(name: str, max_size: int | None) -> None:
    """A 2048 px photo with one face: that face and no other box at the default options (the network
    input capped at 1024 px); at the original size too once the weights allow it.

    (At 2048 px of network input the packaged weights put 5 more boxes on the suit and the background,
    the weights packaged before 16, the reference V1 teacher 1.)
    """
    import cv2

    det = featherface.load_model(name, device="cpu", local_files_only=True)
    image = cv2.resize(cv2.imread(str(ASTRONAUT)), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    faces = det.detect(image, color="bgr", max_size=max_size)
    truth = tuple(4 * v for v in ASTRONAUT_FACE)
    assert len(faces) == 1, [(tuple(round(v) for v in f.box), round(f.score, 2)) for f in faces]
    assert _iou(faces[0].box, truth) > 0.5


def test_weights_behaviour_script_reports_what_these_tests_check() -> None:
    """benchmarks/weights_behaviour.py (how a candidate is judged before it ships) on the packaged weights."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "weights_behaviour.py"
    out = subprocess.run([sys.executable, str(script), "packaged"], capture_output=True, text=True, check=True).stdout
    rec = json.loads(out)
    assert rec["blank_frame_boxes"] == 0 and rec["astronaut_faces_above_0.5"] == 1
    assert rec["astronaut_best"]["iou"] >= 0.5 and rec["astronaut_2048_boxes_at_1024"] == 1
    assert rec["noise_frames_with_a_box"] == 0
    assert rec["astronaut_2048_boxes_original_size"] > 1  # the known gap at the original size
    assert rec["small_faces_found"] == "0/16"  # the known small-face gap (tests/test_small_faces_vs_teacher.py)
    assert set(rec["astronaut_magnified"]) == {"1x", "1.5x", "2x", "2.5x", "3x", "4x"}
    assert rec["astronaut_magnified"]["1x"]["boxes_above_0.5"] == 0
