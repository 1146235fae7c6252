"""Training stack end to end on real images: loss goes down, exact resume, overfitting, export.

Needs ``FEATHERFACE_SHARED`` for the WIDER FACE train images and the ImageNet backbone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from featherface._api import FaceDetector
from featherface._models.config import PriorConfig
from featherface._ops.boxes import box_iou
from featherface._ops.priors import generate_priors
from featherface._options import DetectorOptions
from featherface.pipeline import postprocess as decode
from featherface.train.augment import EvalTransform
from featherface.train.checkpoint import load_checkpoint_model
from featherface.train.config import DataSource, TrainConfig
from featherface.train.data import FaceDataset, detection_collate, read_widerface_bbx_gt
from featherface.train.loop import Trainer
from featherface.train.loss import MultiBoxLoss
from featherface.train.weights_folder import ModelCard, export_checkpoint
from tests.conftest import shared_file

IMAGES = "data/widerface/train_part1/images"
LABELS = "data/widerface/labels/wider_face_train_bbx_gt_available.txt"
BACKBONE = "data/weights/mobilenetv1_x0.25_imagenet.safetensors"


@pytest.fixture(scope="module")
def small_labels(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bbx_gt file with 12 train_part1 images that have 2-6 faces of at least 40 px."""
    samples = read_widerface_bbx_gt(shared_file(shared, LABELS), shared_file(shared, IMAGES), require_images=True)
    chosen = []
    for s in samples:
        wh = s.boxes[:, 2:] - s.boxes[:, :2]
        if 2 <= len(s.boxes) <= 6 and (wh.min(axis=1) >= 40).all():
            chosen.append(s)
        if len(chosen) == 12:
            break
    assert len(chosen) == 12
    root = shared / IMAGES
    out = tmp_path_factory.mktemp("labels") / "bbx_gt.txt"
    lines = []
    for s in chosen:
        lines.append(str(Path(s.image_path).relative_to(root)))
        lines.append(str(len(s.boxes)))
        for x1, y1, x2, y2 in s.boxes:
            lines.append(f"{int(x1)} {int(y1)} {int(x2 - x1)} {int(y2 - y1)} 0 0 0 0 0 0")
    out.write_text("\n".join(lines) + "\n")
    return out


def _config(shared: Path, labels: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(
        model="v2_ultra", train_data=(DataSource("widerface", str(labels), str(shared / IMAGES)),),
        out_dir=str(out), image_size=256, batch_size=4, epochs=1, lr=1e-3, workers=0, seed=3,
        backbone_weights=str(shared_file(shared, BACKBONE)), log_every=1, progress=False, save_every_epochs=0,
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_config_from_yaml_and_json(shared: Path, small_labels: Path, tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    data = {"model": "v2_ultra", "techniques": {"progressive_enhancement": False},
            "train_data": [{"format": "widerface", "labels": str(small_labels), "images": "imgs"}],
            "out_dir": "out", "batch_size": 2, "distill": {"temperature": 3.0}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "c.json").write_text(json.dumps(data))
    a, b = TrainConfig.from_file(tmp_path / "c.yaml"), TrainConfig.from_file(tmp_path / "c.json")
    assert a == b and a.distill.temperature == 3.0
    assert a.train_data[0].images == str((tmp_path / "imgs").resolve())  # relative to the config file
    assert a.model_config().techniques.progressive_enhancement is False  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({**data, "learning_rate": 1})
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({**data, "techniques": {"warp_drive": True}})
    for name in ("v1.yaml", "v2_ultra.yaml"):
        cfg_file = Path(__file__).parents[1] / "configs" / name
        if cfg_file.exists():
            TrainConfig.from_file(cfg_file)  # the shipped example configs parse


@pytest.mark.slow
def test_training_lowers_the_loss_and_resume_is_exact(shared: Path, small_labels: Path, tmp_path: Path) -> None:
    cfg = _config(shared, small_labels, tmp_path / "a", max_steps=6, save_every_steps=3, pct_start=0.1)
    a = Trainer(cfg)
    fixed = FaceDataset(a.samples[:4], EvalTransform(image_size=256))
    images, targets = detection_collate([fixed[i] for i in range(4)])
    priors = generate_priors((256, 256), a.model_config.priors)

    def fixed_loss() -> float:
        a.model.train()  # batch statistics, as in training
        with torch.no_grad():
            return float(a.criterion(a.model(images), targets, priors)["loss"])

    before = fixed_loss()
    a.fit()
    after = fixed_loss()
    losses = [r["total"] for r in a.history if "total" in r]
    assert len(losses) == 6
    assert after < 0.9 * before, (before, after)
    assert (tmp_path / "a" / "step0000003.pt").exists() and (tmp_path / "a" / "last.pt").exists()
    assert [json.loads(x)["step"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))
    # resume from step 3: steps 4..6 reproduce the uninterrupted run exactly
    b = Trainer(_config(shared, small_labels, tmp_path / "b", max_steps=6, save_every_steps=3, pct_start=0.1),
                resume=tmp_path / "a" / "step0000003.pt")
    assert b.step == 3
    b.fit()
    resumed = [r["total"] for r in b.history if "total" in r]
    assert resumed == pytest.approx(losses[3:], rel=1e-5, abs=1e-6)
    # a checkpoint for another architecture is refused
    with pytest.raises(ValueError, match="model config"):
        Trainer(_config(shared, small_labels, tmp_path / "c", max_steps=1, model="v1"), resume=tmp_path / "a" / "last.pt")


def test_ema_and_export_round_trip(shared: Path, small_labels: Path, tmp_path: Path) -> None:
    cfg = _config(shared, small_labels, tmp_path / "run", max_steps=2, ema_decay=0.9)
    t = Trainer(cfg)
    t.fit()
    card = ModelCard(title="t", summary="s", training_data="d", recipe="r", hardware="cpu",
                     metrics={"easy": 0.5, "medium": 0.4, "hard": 0.2}, protocol="p")
    sha = export_checkpoint(tmp_path / "run" / "last.pt", tmp_path / "export", card)
    assert (tmp_path / "export" / "README.md").read_text().count("50.00") == 1
    import featherface

    det = featherface.load_model("v2_ultra", weights=tmp_path / "export", device="cpu")
    assert det.weights_source == "explicit"
    ema_model, _, _ = load_checkpoint_model(tmp_path / "run" / "last.pt")
    for k, v in ema_model.state_dict().items():
        assert torch.equal(det.network.state_dict()[k], v)
    assert not torch.equal(ema_model.state_dict()["heads.0.heads.cls.weight"], t.model.state_dict()["heads.0.heads.cls.weight"])
    from featherface._weights.files import sha256_file

    assert sha == sha256_file(tmp_path / "export" / "model.safetensors")


def test_train_command_exports_what_export_checkpoint_exports(shared: Path, small_labels: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``featherface train CONFIG --export DIR`` (through :func:`featherface.train.loop.train`) writes the
    EMA weights that ``featherface export-checkpoint`` writes from its ``last.pt``; a checkpoint of
    another version is refused by both readers."""
    from featherface import cli
    from featherface._weights.files import sha256_file

    cfg = _config(shared, small_labels, tmp_path / "run", max_steps=2, ema_decay=0.9)
    (tmp_path / "c.json").write_text(json.dumps(cfg.to_dict()))
    assert cli.main(["train", str(tmp_path / "c.json"), "--export", str(tmp_path / "a")]) == 0
    assert cli.main(["export-checkpoint", str(tmp_path / "run" / "last.pt"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    sha = sha256_file(tmp_path / "a" / "model.safetensors")
    assert sha == sha256_file(tmp_path / "b" / "model.safetensors") and out.count(sha) == 2
    assert "finished at step 2" in out
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    torch.save({**state, "version": 99}, tmp_path / "v99.pt")
    with pytest.raises(ValueError, match="unsupported checkpoint version 99"):
        load_checkpoint_model(tmp_path / "v99.pt")
    with pytest.raises(ValueError, match="unsupported checkpoint version 99"):
        export_checkpoint(tmp_path / "v99.pt", tmp_path / "c")


def test_trainer_parts() -> None:
    """The small ``build_*`` / ``select_*`` functions ``Trainer.__init__`` is made of, on their own."""
    from featherface._weights.registry import build_model as build_network
    from featherface.train.loop import (
        build_ema,
        build_optimizer,
        build_scheduler,
        count_steps_per_epoch,
        initialise_student,
        select_amp_dtype,
        select_channels_last,
    )

    cfg = TrainConfig(model="v2_ultra", train_data=(), batch_size=4, max_steps=10, freeze_backbone=True,
                      cls_prior=0.01, ema_decay=0.5, cpu_bf16=True, cpu_channels_last=False)
    assert count_steps_per_epoch(cfg, 9) == 2
    with pytest.raises(ValueError, match="fewer than one batch"):
        count_steps_per_epoch(cfg, 3)
    assert select_amp_dtype(cfg, cuda=False) == torch.bfloat16 and select_channels_last(cfg, cuda=False) is False
    net = build_network(cfg.model_config())
    initialise_student(net, cfg, teacher=None)
    assert not any(p.requires_grad for p in net.backbone.parameters())  # frozen
    heads = [m for m in net.modules() if hasattr(m, "init_class_prior")]
    assert heads and all(torch.allclose(torch.sigmoid(m.cls.bias.view(m.anchors, 2).diff(dim=1)), torch.tensor(0.01))
                         for m in heads)  # softmax face probability 0.01 at every anchor
    opt = build_optimizer(cfg, net)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in trainable]
    sched = build_scheduler(cfg, opt, 10)
    assert sched.total_steps == 10 and opt.param_groups[0]["lr"] == pytest.approx(cfg.lr / cfg.div_factor)
    ema = build_ema(cfg, net)  # starts as a copy of the network
    assert [torch.equal(a, b) for a, b in zip(ema.module.state_dict().values(), net.state_dict().values())] == [True] * len(net.state_dict())  # type: ignore[union-attr]
    assert build_ema(TrainConfig(model="v2_ultra", train_data=(), ema_decay=None), net) is None


def test_init_weights_starts_from_a_weights_folder(shared: Path, small_labels: Path, tmp_path: Path) -> None:
    """``init_weights`` loads a whole network (here the packaged v2_ultra weights) before training."""
    import featherface
    from featherface import save_weights_folder
    from featherface._weights.registry import get_config
    from featherface._weights.resolve import packaged_weights_dir

    packaged = packaged_weights_dir() / "v2_ultra"
    t = Trainer(_config(shared, small_labels, tmp_path / "run", max_steps=1, init_weights=str(packaged)))
    reference = featherface.load_model("v2_ultra", device="cpu").network.state_dict()
    for k, v in t.model.state_dict().items():
        assert torch.equal(v, reference[k]), k
    t.fit()
    assert not torch.equal(t.model.state_dict()["heads.0.heads.cls.weight"], reference["heads.0.heads.cls.weight"])
    v1_folder = tmp_path / "v1"
    save_weights_folder(featherface.build_model("v1"), get_config("v1"), v1_folder)
    with pytest.raises(ValueError, match="init_weights"):
        Trainer(_config(shared, small_labels, tmp_path / "run2", max_steps=1, init_weights=str(v1_folder)))
    loaded = TrainConfig.from_dict({"init_weights": "w", "model": "v2_ultra"}, base_dir=tmp_path)
    assert loaded.init_weights == str((tmp_path / "w").resolve())


def _recall(model: torch.nn.Module, images: torch.Tensor, targets: list[torch.Tensor], prior_cfg: PriorConfig,
            size: int) -> tuple[float, int]:
    """Recall at IoU 0.5 (score > 0.5) of the function being trained (BatchNorm on batch statistics).

    The test checks that targets, matching, encoding, loss and decoding agree: what the loss drives
    the network to output must decode to the annotated faces. A network overfitted on 4 images at a
    high learning rate is so sensitive that even exactly recomputed running statistics (unbiased
    variance over 12x12 maps) move its logits, so eval-mode BatchNorm would test BN bookkeeping, not
    the pipeline.
    """
    with torch.no_grad():
        loc, logits, ldm = model(images)
    dets = decode((loc, logits, ldm), (size, size), prior_cfg, DetectorOptions(score_threshold=0.5, iou_threshold=0.4))
    hit = total = 0
    for d, t in zip(dets, targets):
        gt = t[:, :4] * size
        total += len(gt)
        if len(d.boxes):
            hit += int((box_iou(gt, d.boxes).max(dim=1).values >= 0.5).sum())
    assert total > 0
    return hit / total, sum(len(d.boxes) for d in dets)


@pytest.mark.slow
def test_overfitting_four_images_reaches_high_recall(shared: Path, small_labels: Path) -> None:
    """Four fixed images (11 faces), no augmentation: training reaches recall >= 0.9 at IoU 0.5.

    Recall is checked every 20 steps and training stops once it is reached (at most 200 steps).
    """
    torch.manual_seed(0)
    size = 384
    samples = read_widerface_bbx_gt(small_labels, shared / IMAGES)[:4]
    ds = FaceDataset(samples, EvalTransform(image_size=size))
    images, targets = detection_collate([ds[i] for i in range(4)])
    from featherface._models import create_network
    from featherface._weights.registry import get_config
    from featherface.train.checkpoint import load_backbone_weights

    cfg = get_config("v2_ultra")
    model = create_network(cfg)
    load_backbone_weights(model, shared_file(shared, BACKBONE))
    priors = generate_priors((size, size), cfg.priors)
    crit = MultiBoxLoss(cfg.priors)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-3)
    matched = crit.match(targets, priors)
    model.train()
    faces = sum(len(t) for t in targets)
    _, n_dets = _recall(model, images, targets, cfg.priors, size)
    assert n_dets > 3 * faces  # untrained: boxes everywhere, any "recall" is by chance
    for step in range(1, 201):
        loss = crit(model(images), None, priors, matched=matched)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 0:
            recall, n_dets = _recall(model, images, targets, cfg.priors, size)
            if recall >= 0.9 and n_dets <= 2 * faces:
                break
    print(f"overfit: {faces} faces, recall {recall:.2f}, {n_dets} detections after {step} steps")
    assert recall >= 0.9, f"recall {recall:.2f} after {step} steps"
    assert n_dets <= 2 * faces, f"{n_dets} detections for {faces} faces"
    det = FaceDetector(model, cfg, device="cpu")  # the trained network behind the public API
    assert det.network is model
    anywhere = det.detect(np.zeros((64, 64, 3), np.uint8), score_threshold=0.0)  # every box NMS keeps
    scores = [d.score for d in anywhere]
    assert anywhere and scores == sorted(scores, reverse=True) and 0.0 <= scores[-1] <= scores[0] <= 1.0
    assert all(0.0 <= d.box[0] <= d.box[2] <= 64.0 and 0.0 <= d.box[1] <= d.box[3] <= 64.0 for d in anywhere)


def test_pseudo_label_landmarks_and_val_refusal(shared: Path, small_labels: Path, tmp_path: Path) -> None:
    """Teacher landmarks are attached to annotated boxes and written as readable JSON lines."""
    from featherface._weights.convert import load_reference_v1
    from featherface.train.data import FaceSample, read_jsonl
    from featherface.train.pseudo import label_landmarks

    teacher = load_reference_v1(shared_file(shared, "data/weights/featherface_v1_reference.safetensors"))
    samples = read_widerface_bbx_gt(small_labels, shared / IMAGES)[:2]
    out = tmp_path / "labels.jsonl"
    stats = label_landmarks(teacher, samples, out, shared / IMAGES, max_side=640, progress=False)
    assert stats["images"] == 2 and stats["faces"] == sum(len(s.boxes) for s in samples)
    assert stats["found"] >= stats["faces"] // 2  # clear faces >= 40 px: the teacher finds most
    back = read_jsonl(out, shared / IMAGES)
    assert sum(int(s.has_landmarks.sum()) for s in back) == stats["found"]
    for s, orig in zip(back, samples):
        np.testing.assert_allclose(s.boxes, orig.boxes, atol=1e-3)  # official boxes kept as they are
        for box, pts, has in zip(s.boxes, s.landmarks, s.has_landmarks):
            if has:  # landmarks lie in (or very near) their face box
                assert (pts[:, 0] > box[0] - 0.2 * (box[2] - box[0])).all() and (pts[:, 0] < box[2] + 0.2 * (box[2] - box[0])).all()
    val = FaceSample(Path("/data/widerface/val/images/0--Parade/x.jpg"), np.zeros((0, 4), np.float32),
                     np.zeros((0, 5, 2), np.float32), np.zeros(0, bool))
    with pytest.raises(ValueError, match="val"):
        label_landmarks(teacher, [val], tmp_path / "v.jsonl", tmp_path, progress=False)


def test_eval_mode_gives_the_network_back_in_its_mode() -> None:
    from featherface.train.modes import eval_mode

    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    with eval_mode(net) as inside:
        assert inside is net and not net.training and not net[0].training
    assert net.training and net[0].training
    net.eval()
    with pytest.raises(RuntimeError), eval_mode(net):
        net.train()  # the block changes the mode and fails: the mode before the block comes back
        raise RuntimeError
    assert not net.training and not net[0].training
