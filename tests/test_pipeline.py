"""The public stages of :mod:`featherface.pipeline` add up to what ``FaceDetector.detect`` returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import featherface
from featherface._engines.base import BatchSpec, Runner
from featherface._engines.torch_runner import TorchRunner
from featherface._options import DetectorOptions
from featherface.pipeline import DetectionPipeline, PreparedImage, make_batch, preprocess, to_original
from featherface.pipeline import postprocess as decode
from tests.test_examples import ASTRONAUT


@pytest.fixture(scope="module")
def det() -> featherface.FaceDetector:
    return featherface.load_model("v2_ultra", device="cpu")


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_stages_compose_to_detect(det: featherface.FaceDetector) -> None:
    opts = det.options.updated(input_size=400)
    prepared = preprocess(str(ASTRONAUT), opts)
    assert isinstance(prepared, PreparedImage)
    assert prepared.original_size == (512, 512) and prepared.network_size == (400, 400)
    batch = make_batch([prepared.image], det.config.mean_bgr, det.runner.batch_spec)
    assert batch.shape == (1, 3, 400, 400) and batch.dtype == torch.float32
    raw = det.runner(batch)
    assert [t.shape[-1] for t in raw] == [4, 2, 10]
    raws = decode(raw, prepared.network_size, det.config.priors, opts)
    faces = to_original(raws[0], prepared.network_size, prepared.original_size)
    expected = det.detect(str(ASTRONAUT), input_size=400)
    assert len(faces) == len(expected) == 1
    assert faces == expected  # same code path, bit for bit
    # network-pixel boxes scale back to the original by 512 / 400
    assert np.allclose(np.asarray(faces[0].box), raws[0].boxes[0].double().numpy() * 512 / 400, atol=1e-3)


def test_detector_methods_are_the_pipeline(det: featherface.FaceDetector) -> None:
    assert isinstance(det.pipeline, DetectionPipeline) and det.pipeline.runner is det.runner
    assert isinstance(det.runner, Runner) and isinstance(det.runner, TorchRunner)
    img = _image(90, 120, 0)
    opts = det.options
    p = preprocess(img, opts, color="bgr")
    assert det.pipeline([p, p], opts) == [det.detect(img, color="bgr")] * 2


def test_pipeline_call_refuses_mixed_sizes(det: featherface.FaceDetector) -> None:
    opts = det.options
    a = preprocess(_image(64, 64, 1), opts)
    b = preprocess(_image(64, 80, 2), opts)
    with pytest.raises(ValueError, match="one network-input size"):
        det.pipeline([a, b], opts)


@pytest.mark.parametrize("spec", [BatchSpec(), BatchSpec(channels_last=True), BatchSpec(fill="numpy")])
def test_make_batch_is_bgr_minus_mean_in_every_layout(spec: BatchSpec) -> None:
    images = [_image(30, 40, 3), _image(30, 40, 4)[:, :, ::-1]]  # a negative-stride view too
    before = [im.copy() for im in images]
    got = make_batch(images, (104.0, 117.0, 123.0), spec)
    expect = torch.from_numpy(np.stack([im.astype(np.float32) - np.float32([104, 117, 123]) for im in images]))
    assert torch.equal(got, expect.permute(0, 3, 1, 2))
    assert got.is_contiguous(memory_format=torch.channels_last if spec.channels_last else torch.contiguous_format)
    assert all(np.array_equal(a, b) for a, b in zip(images, before))  # inputs only read


def test_make_batch_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no images"):
        make_batch([], (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="one size"):
        make_batch([_image(10, 10, 0), _image(10, 12, 0)], (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="H x W x 3"):
        make_batch([np.zeros((10, 10), np.uint8)], (0.0, 0.0, 0.0))


def test_decode_respects_options() -> None:
    """Thresholds, caps and NMS come from the one options type."""
    g = torch.Generator().manual_seed(0)
    from featherface._models.config import PriorConfig
    from featherface._ops.priors import num_priors

    n = num_priors((64, 64), PriorConfig())
    loc, ldm = torch.zeros(1, n, 4), torch.zeros(1, n, 10)
    logits = torch.randn(1, n, 2, generator=g) * 3
    all_faces = decode((loc, logits, ldm), (64, 64), PriorConfig(),
                       DetectorOptions(score_threshold=0.0, iou_threshold=1.0, pre_nms_top_k=None, max_detections=None))[0]
    assert all_faces.scores.shape[0] == n  # nothing suppressed: zero offsets give distinct prior boxes
    capped = decode((loc, logits, ldm), (64, 64), PriorConfig(),
                    DetectorOptions(score_threshold=0.5, iou_threshold=1.0, max_detections=7))[0]
    assert capped.scores.shape[0] == 7 and bool((capped.scores > 0.5).all())
    assert torch.equal(capped.scores, all_faces.scores[:7])  # best first, same scores


def test_runner_protocol_is_what_a_custom_engine_implements(det: featherface.FaceDetector) -> None:
    """Any object with ``name``, ``batch_spec`` and ``__call__`` can run a pipeline."""

    class Recording:
        name = "recording"
        batch_spec = BatchSpec(fill="numpy")

        def __init__(self, inner: Runner) -> None:
            self.inner, self.shapes = inner, []

        def __call__(self, batch: torch.Tensor):  # type: ignore[no-untyped-def]
            self.shapes.append(tuple(batch.shape))
            return self.inner(batch)

    runner = Recording(det.runner)
    assert isinstance(runner, Runner)
    pipe = DetectionPipeline(det.config, runner)
    img = _image(48, 64, 5)
    p = preprocess(img, det.options)
    assert pipe([p], det.options) == [det.detect(img)]
    assert runner.shapes == [(1, 3, 48, 64)]
