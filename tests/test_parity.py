"""Exact parity of our V1 + converter + post-processing with the reference implementation.

Needs ``FEATHERFACE_SHARED`` (set by ``.ci/run``): the reference weights and the stored outputs of the
authors' code in ``data/parity/``. Unset -> skipped with the reason shown; set but a file missing -> fail.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from featherface._ops.priors import generate_priors
from featherface._options import DetectorOptions
from featherface._weights.convert import convert_reference_v1_state_dict, load_reference_v1
from featherface._weights.registry import build_model
from featherface.errors import ConversionError
from featherface.pipeline import postprocess as decode
from tests.conftest import shared_file

MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)


@pytest.fixture(scope="module")
def ref_weights(shared: Path) -> Path:
    return shared_file(shared, "data/weights/featherface_v1_reference.safetensors")


@pytest.fixture(scope="module")
def reference_model(ref_weights: Path) -> torch.nn.Module:
    return load_reference_v1(ref_weights)


def _synthetic_input() -> torch.Tensor:
    h = np.arange(640)[:, None]
    w = np.arange(640)[None, :]
    x = np.stack([((7 * h + 13 * w + 29 * c) % 256).astype(np.float32) - MEAN[c] for c in range(3)])
    return torch.from_numpy(x)[None]


def _check_raw(model: torch.nn.Module, x: torch.Tensor, ref: np.lib.npyio.NpzFile) -> None:
    with torch.no_grad():
        loc, logits, ldm = model(x)
    assert np.abs(loc[0].numpy() - ref["loc"]).max() <= 1e-4
    assert np.abs(torch.softmax(logits, -1)[0].numpy() - ref["conf"]).max() <= 1e-4
    assert np.abs(ldm[0].numpy() - ref["ldm"]).max() <= 1e-4


def test_raw_outputs_synthetic_640(shared: Path, reference_model: torch.nn.Module) -> None:
    ref = np.load(shared_file(shared, "data/parity/reference_outputs_synthetic640.npz"))
    _check_raw(reference_model, _synthetic_input(), ref)


def _group_image(shared: Path) -> np.ndarray:
    img = cv2.imread(str(shared_file(shared, "data/parity/test_image_largest_group_700x405.jpg")))
    assert img is not None and img.shape == (405, 700, 3)
    return img


def test_raw_outputs_largest_group(shared: Path, reference_model: torch.nn.Module) -> None:
    ref = np.load(shared_file(shared, "data/parity/reference_outputs_largest_group.npz"))
    x = torch.from_numpy(_group_image(shared).astype(np.float32) - MEAN).permute(2, 0, 1)[None]
    assert generate_priors((405, 700), reference_model.config.priors).shape[0] == 11_836
    _check_raw(reference_model, x, ref)


def test_postprocessed_detections_largest_group(shared: Path, reference_model: torch.nn.Module) -> None:
    """Score > 0.02, NMS 0.4 with the +1 convention, no top-k: the same 1,464 detections."""
    ref = np.load(shared_file(shared, "data/parity/reference_outputs_largest_group.npz"))
    x = torch.from_numpy(_group_image(shared).astype(np.float32) - MEAN).permute(2, 0, 1)[None]
    with torch.no_grad():
        loc, logits, ldm = reference_model(x)
    opts = DetectorOptions(score_threshold=0.02, iou_threshold=0.4, pre_nms_top_k=None,
                           max_detections=None, legacy_nms=True)
    det = decode((loc, logits, ldm), (405, 700), reference_model.config.priors, opts)[0]
    ref_dets, ref_ldm = ref["dets_after_nms"], ref["landmarks_after_nms"]
    assert det.boxes.shape[0] == ref_dets.shape[0] == 1_464
    ours = torch.cat([det.boxes, det.scores[:, None]], 1).numpy()
    # one-to-one matching: each reference detection's nearest ours, and that assignment is a permutation
    dist = np.abs(ours[:, None, :4] - ref_dets[None, :, :4]).max(-1)
    match = dist.argmin(0)
    assert len(set(match.tolist())) == len(match)
    assert dist[match, np.arange(len(match))].max() <= 1e-3
    assert np.abs(ours[match, 4] - ref_dets[:, 4]).max() <= 1e-5
    assert np.abs(det.landmarks.numpy()[match] - ref_ldm).max() <= 1e-3
    # order equals the reference except where two scores tie to within float32 noise
    moved = np.nonzero(match != np.arange(len(match)))[0]
    for i in moved:
        assert abs(ref_dets[i, 4] - ref_dets[match[i], 4]) < 1e-5


def test_converter_is_strict(ref_weights: Path) -> None:
    state = load_file(str(ref_weights))
    model = build_model("v1")
    converted = convert_reference_v1_state_dict(state, model)
    assert len(converted) == 587
    # DataParallel prefix and thop buffers are cleaned
    dirty = {f"module.{k}": v for k, v in state.items()}
    dirty["module.body.stage1.0.0.total_ops"] = torch.zeros(1)
    dirty["bifpn.0.total_params"] = torch.zeros(1)
    assert convert_reference_v1_state_dict(dirty, model).keys() == converted.keys()
    extra = dict(state, **{"mystery.weight": torch.zeros(1)})
    with pytest.raises(ConversionError, match="unmapped source key 'mystery.weight'"):
        convert_reference_v1_state_dict(extra, model)
    missing = {k: v for k, v in state.items() if k != "ssh2.conv3X3.0.regular_conv.weight"}
    with pytest.raises(ConversionError, match="model keys not provided"):
        convert_reference_v1_state_dict(missing, model)
    wrong = dict(state, **{"ClassHead.0.conv1x1.bias": torch.zeros(5)})
    with pytest.raises(ConversionError, match="shape mismatch for 'ClassHead.0.conv1x1.bias'"):
        convert_reference_v1_state_dict(wrong, model)


def test_missing_reference_file(tmp_path: Path) -> None:
    # .safetensors and the authors' .pth are both read (tests/test_convert_inputs.py); a missing file
    # is a one-line error naming it
    with pytest.raises(ConversionError, match=r"weights\.pth: cannot read the file"):
        load_reference_v1(tmp_path / "weights.pth")
