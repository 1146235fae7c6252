"""Training loop: :class:`TrainConfig` and :class:`Trainer`.

Recipe (ARCHITECTURE.md 2.5): AdamW, one-cycle LR stepped every iteration, MultiBox loss with 7:1
hard-negative mining, the section-2.6 augmentation; optionally distillation from a frozen teacher
(section 3.5), EMA of weights, mixed precision and channels-last on CUDA, gradient clipping.

Determinism and exact resume: the batch order of epoch ``e`` is a permutation drawn from
``(seed, e)`` and the augmentation of item ``i`` from ``(seed, e, i)`` (see
:class:`featherface.train.data.FaceDataset`), so a run resumed from a checkpoint taken after any step
sees exactly the batches it would have seen; the optimizer, scheduler, scaler and EMA states are
restored with the weights.

Data parallel (``torchrun --nproc_per_node=N -m featherface.train CONFIG``, see
:mod:`featherface.train.distributed`): ``batch_size`` stays the *global* batch. Each of the ``W``
ranks takes a contiguous ``batch_size / W`` slice of the same seeded global batch, the model is
wrapped in ``DistributedDataParallel`` (optionally with synchronised BatchNorm, ``sync_bn``), and the
loss terms are normalised by the global positive counts, so a W-process run follows the
single-process run with the same config (exactly so with ``sync_bn``, up to float rounding). Rank 0
alone logs, writes checkpoints (from the unwrapped model, so they resume in any number of processes)
and validates; every rank loads the same checkpoint on resume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from featherface.config import ModelConfig, V2UltraTechniques
from featherface.models import count_parameters, create_network
from featherface.models.layers import DetectionHeads
from featherface.priors import generate_priors
from featherface.registry import get_config
from featherface.train import distributed as ddp_utils
from featherface.train.augment import TrainTransform
from featherface.train.data import (
    FaceDataset,
    FaceSample,
    detection_collate,
    read_jsonl,
    read_retinaface_labels,
    read_widerface_bbx_gt,
)
from featherface.train.distill import DistillationLoss, DistillConfig, combined_loss
from featherface.train.loss import LossWeights, MultiBoxLoss

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class DataSource:
    """One labelled image collection.

    ``format``: ``"widerface"`` (official ``bbx_gt`` text), ``"retinaface"`` (``label.txt`` with
    landmarks) or ``"jsonl"`` (see :func:`featherface.train.data.read_jsonl`). ``repeat`` > 1
    oversamples the source.
    """

    format: Literal["widerface", "retinaface", "jsonl"]
    labels: str
    images: str
    repeat: int = 1

    def load(self) -> list[FaceSample]:
        if self.format == "widerface":
            samples = read_widerface_bbx_gt(self.labels, self.images, require_images=True)
        elif self.format == "retinaface":
            samples = read_retinaface_labels(self.labels, self.images)
        elif self.format == "jsonl":
            samples = read_jsonl(self.labels, self.images)
        else:
            raise ValueError(f"unknown data format {self.format!r}; use widerface, retinaface or jsonl")
        return samples * max(1, int(self.repeat))


def _strict_fields(cls: type, data: Mapping[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known keys: {sorted(known)}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved into every checkpoint and export).

    Paths are resolved relative to the config file's folder when loaded with :meth:`from_file`.
    ``max_steps`` shortens a run (schedule included) for smoke tests and reduced CPU schedules.
    ``init_weights`` starts from a weights folder (``config.json`` + ``model.safetensors``, e.g. an
    exported run or the packaged weights) instead of a fresh network: fine-tuning, or continuing a
    run with a new schedule (``resume=`` continues the same schedule from a checkpoint instead).
    ``batch_size`` is the global batch of a data-parallel run (split evenly across the ranks);
    ``sync_bn`` computes BatchNorm statistics over the global batch in such a run (ignored in a
    single process).
    """

    model: str = "v2_ultra"
    techniques: Mapping[str, bool] | None = None
    train_data: tuple[DataSource, ...] = ()
    out_dir: str = "runs/train"
    image_size: int = 640
    batch_size: int = 32
    epochs: int = 350
    max_steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    grad_clip: float | None = 10.0
    ema_decay: float | None = None
    amp: bool = True
    channels_last: bool = True
    workers: int = 4
    seed: int = 0
    backbone_weights: str | None = None
    backbone_from_teacher: bool = False
    freeze_backbone: bool = False
    cls_prior: float | None = None
    init_weights: str | None = None
    teacher: str | None = None
    teacher_runtime: str = "torch"
    distill: DistillConfig = field(default_factory=DistillConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    neg_pos_ratio: int = 7
    min_negatives: int = 0
    negative_frames: float = 0.0
    save_every_epochs: int = 10
    save_every_steps: int | None = None
    log_every: int = 20
    val_widerface: str | None = None
    val_subset: int = 500
    val_every_epochs: int = 0
    val_max_size: int | None = None
    device: str | None = None
    threads: int | None = None
    progress: bool = True
    sync_bn: bool = False

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.epochs <= 0 or self.image_size <= 0:
            raise ValueError("TrainConfig: batch_size, epochs and image_size must be positive")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError("TrainConfig: max_steps must be positive")
        if not 0 < self.pct_start < 1:
            raise ValueError("TrainConfig: pct_start must be in (0, 1)")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError("TrainConfig: ema_decay must be in (0, 1)")
        if self.backbone_from_teacher and not self.teacher:
            raise ValueError("TrainConfig: backbone_from_teacher needs a teacher")
        if self.backbone_from_teacher and self.backbone_weights:
            raise ValueError("TrainConfig: give backbone_weights or backbone_from_teacher, not both")
        if self.cls_prior is not None and not 0 < self.cls_prior < 1:
            raise ValueError("TrainConfig: cls_prior must be in (0, 1)")
        if self.teacher_runtime not in ("torch", "onnxruntime"):
            raise ValueError(f"TrainConfig: teacher_runtime must be 'torch' or 'onnxruntime', got {self.teacher_runtime!r}")
        if self.min_negatives < 0:
            raise ValueError("TrainConfig: min_negatives must be >= 0")
        if not 0 <= self.negative_frames < 1:
            raise ValueError("TrainConfig: negative_frames must be in [0, 1)")
        self.model_config()  # validates model name and techniques

    def model_config(self) -> ModelConfig:
        cfg = get_config(self.model)
        if self.techniques:
            if cfg.techniques is None:
                raise ValueError(f"TrainConfig: model {self.model!r} has no technique switches")
            cfg = cfg.replace(techniques=dataclasses.replace(cfg.techniques, **dict(self.techniques)))
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train_data"] = [dataclasses.asdict(s) for s in self.train_data]
        d["techniques"] = None if self.techniques is None else dict(self.techniques)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> TrainConfig:
        _strict_fields(cls, data)
        d = dict(data)

        def path(p: str | None) -> str | None:
            if p is None or base_dir is None or os.path.isabs(p):
                return p
            return str((Path(base_dir) / p).resolve())

        sources = []
        for s in d.pop("train_data", []) or []:
            _strict_fields(DataSource, s)
            s = dict(s)
            s["labels"], s["images"] = path(s["labels"]), path(s["images"])
            sources.append(DataSource(**s))
        d["train_data"] = tuple(sources)
        if "distill" in d and isinstance(d["distill"], Mapping):
            _strict_fields(DistillConfig, d["distill"])
            d["distill"] = DistillConfig(**d["distill"])
        if "loss_weights" in d and isinstance(d["loss_weights"], Mapping):
            _strict_fields(LossWeights, d["loss_weights"])
            d["loss_weights"] = LossWeights(**d["loss_weights"])
        if d.get("techniques") is not None:
            _strict_fields(V2UltraTechniques, d["techniques"])
        for key in ("out_dir", "backbone_weights", "init_weights", "teacher", "val_widerface"):
            if key in d:
                d[key] = path(d[key])
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        """Load a YAML (``.yaml``/``.yml``, needs PyYAML from the ``train`` extra) or JSON config."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        if p.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:  # pragma: no cover - dependency of the train extra
                raise ImportError('YAML configs need PyYAML: pip install "featherface[train]"') from exc
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"{p}: a training config must be a mapping")
        return cls.from_dict(data, base_dir=p.parent)


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of a seeded per-epoch permutation, optionally starting at a given batch (for resume).

    ``batch_size`` is the global batch. With ``world_size`` > 1, rank ``r`` yields the contiguous
    slice ``[r * b, (r + 1) * b)`` (``b = batch_size / world_size``) of every global batch, so the
    ranks together see exactly the batches of a single process with the same arguments.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                 *, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"EpochBatchSampler: invalid rank {rank} for world size {world_size}")
        if batch_size % world_size:
            raise ValueError(f"EpochBatchSampler: batch size {batch_size} is not divisible by world size {world_size}")
        self.n, self.batch_size, self.seed, self.epoch, self.start_batch = n, batch_size, seed, epoch, start_batch
        self.rank, self.world_size = rank, world_size

    def global_batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        nb = self.n // self.batch_size
        return [perm[i * self.batch_size : (i + 1) * self.batch_size] for i in range(nb)]

    def batches(self) -> list[list[int]]:
        """This rank's batches (the global batches when ``world_size`` is 1)."""
        if self.world_size == 1:
            return self.global_batches()
        b = self.batch_size // self.world_size
        return [batch[self.rank * b : (self.rank + 1) * b] for batch in self.global_batches()]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.start_batch :]

    def __len__(self) -> int:
        return max(0, self.n // self.batch_size - self.start_batch)


def load_backbone_weights(model: nn.Module, path: str | os.PathLike) -> int:
    """Load an ImageNet MobileNetV1-0.25 safetensors file into ``model.backbone`` (strict, ``fc.*`` dropped)."""
    from featherface.hub import load_state_dict_file

    state = load_state_dict_file(path)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    backbone = model.backbone  # type: ignore[attr-defined]
    missing, unexpected = set(backbone.state_dict()) - set(state), set(state) - set(backbone.state_dict())
    if missing or unexpected:
        raise ValueError(f"{path}: backbone keys do not match: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    backbone.load_state_dict(state, strict=True)
    return len(state)


def load_teacher(path: str | os.PathLike, device: torch.device) -> nn.Module:
    """A frozen V1 teacher from the authors' reference file or from one of our weight folders."""
    from featherface.convert import ConversionError, load_reference_v1
    from featherface.hub import load_weights_into, resolve_weights

    p = Path(path)
    try:
        teacher = load_reference_v1(p) if p.is_file() else None
    except ConversionError:
        teacher = None
    if teacher is None:
        resolved = resolve_weights(None, weights=p)
        teacher = create_network(resolved.config)
        load_weights_into(teacher, resolved.model_file)
    teacher = teacher.to(device).eval()
    for prm in teacher.parameters():
        prm.requires_grad_(False)
    return teacher


class Trainer:
    """Runs a :class:`TrainConfig`. ``fit()`` trains (resuming from ``resume=`` if given)."""

    def __init__(self, cfg: TrainConfig, *, resume: str | os.PathLike | None = None) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        rank, world, local_rank = ddp_utils.env_world()
        if world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", local_rank)  # one GPU per process
        self.dist = ddp_utils.setup(self.device)
        if self.dist.distributed and cfg.batch_size % self.dist.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} (the global batch) is not divisible by the "
                             f"{self.dist.world_size} processes of this run")
        self.cuda = self.device.type == "cuda"
        if not self.cuda:
            # denormal floats (tiny gradients and attention products late in training) are ~100x slower
            # on x86 CPUs; flushing them to zero changes no result that matters
            torch.set_flush_denormal(True)
        self.out_dir = Path(cfg.out_dir)
        self.model_config = cfg.model_config()
        torch.manual_seed(cfg.seed)
        self.model = create_network(self.model_config)
        if cfg.backbone_weights:
            load_backbone_weights(self.model, cfg.backbone_weights)
        if cfg.init_weights:  # fine-tune / continue from a weights folder of the same model config
            from featherface.hub import load_weights_into, resolve_weights

            resolved = resolve_weights(None, weights=cfg.init_weights)
            if resolved.config != self.model_config:
                raise ValueError(f"init_weights {cfg.init_weights}: weights are for {resolved.config.name} "
                                 f"with another config than this run's {self.model_config.name}")
            load_weights_into(self.model, resolved.model_file)
        self.teacher = load_teacher(cfg.teacher, self.device) if cfg.teacher else None
        if cfg.backbone_from_teacher and not cfg.init_weights:
            assert self.teacher is not None  # TrainConfig checks it
            self.model.backbone.load_state_dict(self.teacher.backbone.state_dict(), strict=True)  # type: ignore[union-attr]
        if cfg.cls_prior is not None and not cfg.init_weights:
            for m in self.model.modules():
                if isinstance(m, DetectionHeads):
                    m.init_class_prior(cfg.cls_prior)
        if cfg.freeze_backbone:
            for prm in self.model.backbone.parameters():  # type: ignore[union-attr]
                prm.requires_grad_(False)
        # a frozen student backbone equal to the teacher's is run once for both networks
        self.shared_backbone = bool(
            cfg.freeze_backbone and self.teacher is not None and _same_state(self.model.backbone, self.teacher.backbone)  # type: ignore[union-attr]
        )
        self.ort_teacher = None
        if self.teacher is not None and cfg.teacher_runtime == "onnxruntime":
            from featherface.train.teacher import OnnxRuntimeTeacher

            self.ort_teacher = OnnxRuntimeTeacher(self.teacher, num_threads=cfg.threads)
        find_unused = self.dist.distributed and ddp_utils.has_unused_parameters(self.model)
        if self.dist.distributed and cfg.sync_bn:
            self.model = ddp_utils.convert_sync_batchnorm(self.model, cuda=self.device.type == "cuda")
        self.model.to(self.device)
        if self.cuda and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = MultiBoxLoss(self.model_config.priors, cfg.neg_pos_ratio, weights=cfg.loss_weights,
                                      min_negatives=cfg.min_negatives)
        self.distill = DistillationLoss(cfg.distill) if self.teacher is not None else None
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                           lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.samples: list[FaceSample] = [s for src in cfg.train_data for s in src.load()]
        if not self.samples:
            raise ValueError("TrainConfig.train_data gives no training images")
        self.dataset = FaceDataset(
            self.samples,
            TrainTransform(image_size=cfg.image_size, mean_bgr=self.model_config.mean_bgr,
                           negative_frames=cfg.negative_frames),
            seed=cfg.seed,
        )
        self.steps_per_epoch = len(self.samples) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.samples)} images are fewer than one batch of {cfg.batch_size}")
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=cfg.lr, total_steps=self.total_steps, pct_start=cfg.pct_start,
            div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor,
        )
        self.amp_dtype: torch.dtype | None = None
        if self.cuda and cfg.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        if cfg.ema_decay:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
            )
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.priors = generate_priors((cfg.image_size, cfg.image_size), self.model_config.priors, device=self.device)
        if resume is not None:
            self.load_checkpoint(resume)
        # the module the training forward runs through: DDP over ``self.model`` in a distributed run
        # (``self.model`` stays the unwrapped network: checkpoints, EMA, export and evaluation use it)
        # (with a shared backbone it maps backbone features to outputs: ``_HeadOnly``)
        self.net: nn.Module = _HeadOnly(self.model) if self.shared_backbone else self.model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.cuda else None,
                find_unused_parameters=find_unused,
            )

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.cfg.to_dict()),
            "model_config": json.dumps(self.model_config.to_dict()),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        torch.save(self.checkpoint_state(), tmp)
        os.replace(tmp, p)  # never leave a half-written checkpoint behind
        return p

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: unsupported checkpoint version {state.get('version')}")
        saved_model = ModelConfig.from_dict(json.loads(state["model_config"]))
        if saved_model != self.model_config:
            raise ValueError(f"{path}: checkpoint is for model config {saved_model}, not {self.model_config}")
        self.model.load_state_dict(state["model"], strict=True)
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError(f"{path}: checkpoint has no EMA state but ema_decay is set")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.step = int(state["step"])
        logger.info("resumed from %s at step %d", path, self.step)

    # -- training ----------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """Whether this process logs, checkpoints, validates and exports (rank 0, or not distributed)."""
        return self.dist.is_main

    def close(self) -> None:
        """Leave the process group if this trainer created it (a no-op in a single process)."""
        ddp_utils.cleanup(self.dist)

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        self.dataset.set_epoch(epoch)
        sampler = EpochBatchSampler(len(self.dataset), self.cfg.batch_size, self.cfg.seed, epoch, start_batch,
                                    rank=self.dist.rank, world_size=self.dist.world_size)
        return DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=self.cfg.workers, collate_fn=detection_collate,
            pin_memory=self.cuda, persistent_workers=False,
            worker_init_fn=_single_threaded_worker if self.cfg.workers else None,
        )

    @torch.no_grad()
    def teacher_pass(self, images: torch.Tensor) -> tuple[tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """``(backbone features or None, teacher outputs or None)`` for a batch ``images[B, 3, S, S]``.

        Features are returned when the student shares the frozen backbone (``self.shared_backbone``):
        the student then runs only :meth:`forward_head` on them. The teacher runs in torch or, with
        ``teacher_runtime: onnxruntime``, as an ONNX Runtime graph that also yields the features.
        """
        if self.ort_teacher is not None:
            t_feats, t_out = self.ort_teacher(images)
            return (tuple(f.to(self.device) for f in t_feats) if self.shared_backbone else None,
                    tuple(t.to(self.device) for t in t_out))
        feats = self.model.backbone(images) if self.shared_backbone else None  # type: ignore[union-attr]
        if self.teacher is None:
            return feats, None
        t_out = self.teacher.forward_head(feats) if feats is not None else self.teacher(images)  # type: ignore[operator]
        return feats, t_out

    def train_step(self, images: torch.Tensor, targets: Sequence[torch.Tensor]) -> dict[str, float]:
        """One optimisation step on a batch; returns the loss terms as floats.

        In a distributed run ``images`` is this rank's slice of the global batch and the returned terms
        are averaged over the ranks (``num_pos`` summed): the loss of the global batch.
        """
        self.net.train()
        if self.cfg.freeze_backbone:  # frozen: BatchNorm keeps its running statistics
            self.model.backbone.eval()  # type: ignore[union-attr]
        images = images.to(self.device, non_blocking=True)
        if self.cuda and self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        matched = self.criterion.match(targets, self.priors)
        normalizers = None
        if self.dist.distributed:  # denominators of the global batch (see MultiBoxLoss.forward)
            counts = torch.stack([(matched[1] != 0).sum(), (matched[1] > 0).sum()]).float()
            counts = ddp_utils.all_reduce_sum(counts, self.dist)
            normalizers = (counts[0].clamp(min=1) / self.dist.world_size, counts[1].clamp(min=1) / self.dist.world_size)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            feats, t_out = self.teacher_pass(images)
            out = self.net(feats) if feats is not None else self.net(images)
            if normalizers is None:
                task = self.criterion(out, None, self.priors, matched=matched)
            else:
                task = self.criterion(out, None, self.priors, matched=matched, normalizers=normalizers)
            if t_out is not None and self.distill is not None:
                if normalizers is None:
                    distill_terms = self.distill(out, t_out, matched[1])
                else:
                    distill_terms = self.distill(out, t_out, matched[1], pos_normalizer=normalizers[0])
                terms = combined_loss(task, distill_terms, self.cfg.distill)
                total = terms["total"]
            else:
                terms = dict(task)
                total = task["loss"]
        if self.dist.distributed:
            reported = ddp_utils.reduce_terms(terms | {"total": total}, self.dist)
            if not torch.isfinite(reported["total"]):  # every rank sees the same value and stops together
                raise FloatingPointError(f"non-finite loss at step {self.step}: {({k: float(v) for k, v in reported.items()})}")
        elif not torch.isfinite(total):
            raise FloatingPointError(f"non-finite loss at step {self.step}: {({k: float(v) for k, v in terms.items()})}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        if self.dist.distributed:
            return {k: float(v) for k, v in reported.items()}
        return {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}

    def _log(self, record: dict[str, float]) -> None:
        self.history.append(record)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def eval_model(self) -> nn.Module:
        """The weights to evaluate/export: the EMA average when enabled, else the live model."""
        return self.ema.module if self.ema is not None else self.model

    def fit(self) -> list[dict[str, float]]:
        """Train until ``total_steps``; returns the logged records."""
        cfg = self.cfg
        main = self.is_main
        world = self.dist.world_size
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2), encoding="utf-8")
            logger.info(
                "training %s (%d params) on %d images, %d steps/epoch, %d steps, batch %d, lr %g, device %s",
                self.model_config.name, count_parameters(self.model), len(self.samples), self.steps_per_epoch,
                self.total_steps, cfg.batch_size, cfg.lr, self.device,
            )
            if self.dist.distributed:
                logger.info(
                    "data parallel: %d processes (%s), global batch %d = %d x %d, lr %g, sync_bn %s",
                    world, "nccl" if self.cuda else "gloo", cfg.batch_size, world, cfg.batch_size // world,
                    cfg.lr, cfg.sync_bn,
                )
        bar = _progress(self.total_steps, self.step, cfg.progress) if main else None
        window: list[dict[str, float]] = []
        t0 = time.perf_counter()
        seen = 0
        while self.step < self.total_steps:
            epoch, start_batch = divmod(self.step, self.steps_per_epoch)
            for images, targets in self._loader(epoch, start_batch):
                terms = self.train_step(images, targets)
                seen += images.shape[0] * world  # the global batch (ranks take equal slices)
                window.append(terms)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items() if k in ("total", "loc", "cls", "ldm",
                                                                                         "task_loc", "task_cls", "distill_kl")})
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    if main:
                        dt = time.perf_counter() - t0
                        rec = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
                        rec.update(step=self.step, epoch=self.step / self.steps_per_epoch,
                                   lr=self.scheduler.get_last_lr()[0], images_per_s=seen / max(dt, 1e-9))
                        self._log(rec)
                        logger.info("step %d/%d  loss %.4f  lr %.3g  %.1f images/s", self.step, self.total_steps,
                                    rec.get("total", rec.get("loss", float("nan"))), rec["lr"], rec["images_per_s"])
                    window, seen, t0 = [], 0, time.perf_counter()
                if main and cfg.save_every_steps and self.step % cfg.save_every_steps == 0:
                    self.save_checkpoint(self.out_dir / f"step{self.step:07d}.pt")
                end_of_epoch = self.step % self.steps_per_epoch == 0
                if end_of_epoch or self.step >= self.total_steps:
                    break
            ep = self.step // self.steps_per_epoch
            if self.step % self.steps_per_epoch == 0:
                if main and cfg.save_every_epochs and ep % cfg.save_every_epochs == 0:
                    self.save_checkpoint(self.out_dir / f"epoch{ep:04d}.pt")
                if main and cfg.val_every_epochs and cfg.val_widerface and ep % cfg.val_every_epochs == 0:
                    self._validate(ep)
                ddp_utils.barrier(self.dist)  # the other ranks wait for rank 0's checkpoint/validation
        if bar is not None:
            bar.close()
        if main:
            self.save_checkpoint(self.out_dir / "last.pt")
            if cfg.val_widerface and cfg.val_every_epochs:
                self._validate(self.step / self.steps_per_epoch)
        ddp_utils.barrier(self.dist)  # every rank returns once last.pt exists
        return self.history

    def _validate(self, epoch: float) -> None:
        from featherface.train.widerface import evaluate_detector_on_widerface

        model = self.eval_model()
        res = evaluate_detector_on_widerface(
            model, self.model_config, self.cfg.val_widerface, subset=self.cfg.val_subset,
            max_size=self.cfg.val_max_size, device=self.device, progress=False,
        )
        rec = {"step": self.step, "epoch": float(epoch), **{f"val_{k}": float(v) for k, v in res.items() if k in ("easy", "medium", "hard")}}
        logger.info("validation (%d-image val subset): %s", self.cfg.val_subset, rec)
        self._log(rec)


def _single_threaded_worker(_worker_id: int) -> None:
    """Data-loader workers decode and augment one image at a time: one torch and one OpenCV thread,
    so that they do not compete with the training step's own threads for the cores."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


class _HeadOnly(nn.Module):
    """``forward(feats)`` = ``model.forward_head(feats)``: the trainable part of a network whose
    frozen backbone is run outside (once, for student and teacher); wrapped by DDP when distributed."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.forward_head(feats)  # type: ignore[operator]


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    """Whether two modules hold equal tensors under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa
    )


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the train extra
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=2.0)


def train(config: TrainConfig | str | os.PathLike, *, resume: str | os.PathLike | None = None) -> Trainer:
    """Train from a config (object or YAML/JSON path); returns the finished :class:`Trainer`."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_file(config)
    trainer = Trainer(cfg, resume=resume)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer


__all__ = ["DataSource", "TrainConfig", "Trainer", "EpochBatchSampler", "load_backbone_weights", "load_teacher", "train"]
