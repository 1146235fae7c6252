"""Training loop: :class:`Trainer` and :func:`train`.

Recipe, as the FeatherFace authors' ``train.py`` with ``cfg_mnet`` actually runs it (github
fokouarnaud/FeatherFace): AdamW with PyTorch's defaults apart from the learning rate (so weight decay
0.01), a one-cycle LR schedule stepped every iteration, the MultiBox loss with 7:1 hard-negative mining
(:mod:`featherface.train.loss`) and the RetinaFace augmentation (:mod:`featherface.train.augment`);
optionally distillation from a frozen teacher (:mod:`featherface.train.distill`), EMA of weights, mixed
precision and channels-last on CUDA, gradient clipping. The run is described by a
:class:`featherface.train.config.TrainConfig`.

Determinism and exact resume: the batch order of epoch ``e`` is a permutation drawn from
``(seed, e)`` (:class:`featherface.train.sampler.EpochBatchSampler`) and the augmentation of item
``i`` from ``(seed, e, i)`` (see :class:`featherface.train.data.FaceDataset`), so a run resumed from
a checkpoint taken after any step sees exactly the batches it would have seen; the optimizer,
scheduler, scaler and EMA states are restored with the weights (:mod:`featherface.train.checkpoint`).

Data parallel (``torchrun --nproc_per_node=N -m featherface.train CONFIG``, see
:mod:`featherface.train.distributed`): ``batch_size`` stays the *global* batch. Each of the ``W``
ranks takes a contiguous ``batch_size / W`` slice of the same seeded global batch, the model is
wrapped in ``DistributedDataParallel`` (optionally with synchronised BatchNorm, ``sync_bn``), and the
loss terms are normalised by the global positive counts, so a W-process run follows the
single-process run with the same config (exactly so with ``sync_bn``, up to float rounding). Rank 0
alone logs, writes checkpoints (from the unwrapped model, so they resume in any number of processes)
and validates; every rank loads the same checkpoint on resume. What a training step does differently
in such a run is gathered in one place, the trainer's ``batch_scope`` (:class:`_GlobalBatch` rather
than :class:`_LocalBatch`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from featherface._models import count_parameters
from featherface._models.config import ModelConfig
from featherface._models.layers import DetectionHeads
from featherface._ops.priors import generate_priors
from featherface._weights.registry import build_model
from featherface.train import distributed as ddp_utils
from featherface.train.augment import TrainTransform
from featherface.train.checkpoint import (
    checkpoint_state,
    load_backbone_weights,
    load_init_weights,
    load_teacher,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from featherface.train.config import TrainConfig
from featherface.train.data import FaceDataset, FaceSample, detection_collate
from featherface.train.distill import DistillationLoss, combined_loss
from featherface.train.loss import MultiBoxLoss
from featherface.train.progress import progress_bar
from featherface.train.sampler import EpochBatchSampler

if TYPE_CHECKING:
    from featherface.train.teacher import OnnxRuntimeTeacher

logger = logging.getLogger(__name__)


class LossNormalizers(NamedTuple):
    """Denominators that replace a loss's own ``max(1, N_pos)`` (``None``: the batch's own count).

    ``task`` is the ``(pos, ldm)`` pair of :class:`featherface.train.loss.MultiBoxLoss`, ``distill``
    the positive-anchor denominator of :class:`featherface.train.distill.DistillationLoss`.
    """

    task: tuple[torch.Tensor, torch.Tensor] | None = None
    distill: torch.Tensor | None = None


class _LocalBatch:
    """A single-process step: the losses are those of the batch as it is, reported as computed."""

    def normalizers(self, matched: tuple[torch.Tensor, ...]) -> LossNormalizers:
        return LossNormalizers()

    def report(self, terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss terms to log and to check for finiteness (detached)."""
        return {k: v.detach() for k, v in terms.items()}


class _GlobalBatch:
    """A data-parallel step: this rank's slice is one part of the global batch.

    The loss denominators are the global positive counts divided by the world size, so that the
    mean of the per-rank losses (what DDP's gradient averaging optimises) is the loss of the global
    batch (see :meth:`featherface.train.loss.MultiBoxLoss.forward`); the reported terms are averaged
    over the ranks (``num_pos`` summed), so every rank reports, and checks, the same values.
    """

    def __init__(self, ctx: ddp_utils.DistContext) -> None:
        self.ctx = ctx

    def normalizers(self, matched: tuple[torch.Tensor, ...]) -> LossNormalizers:
        counts = torch.stack([(matched[1] != 0).sum(), (matched[1] > 0).sum()]).float()
        counts = ddp_utils.all_reduce_sum(counts, self.ctx)
        pos = counts[0].clamp(min=1) / self.ctx.world_size
        ldm = counts[1].clamp(min=1) / self.ctx.world_size
        return LossNormalizers(task=(pos, ldm), distill=pos)

    def report(self, terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss terms of the global batch (one all-reduce; detached)."""
        return ddp_utils.reduce_terms(terms, self.ctx)


class Trainer:
    """Runs a :class:`TrainConfig`. ``fit()`` trains (resuming from ``resume=`` if given).

    ``__init__`` composes the module's ``build_*`` / ``select_*`` functions in a fixed order: the
    student is built right after ``torch.manual_seed(cfg.seed)`` and everything that draws from the
    torch RNG afterwards (the teacher's construction, the probe of
    :func:`~featherface.train.distributed.has_unused_parameters`) runs in the same order on every
    run, so a config trains reproducibly and a resumed run restores the RNG state last.
    """

    def __init__(self, cfg: TrainConfig, *, resume: str | os.PathLike | None = None) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = select_device(cfg)
        self.dist = join_process_group(cfg, self.device)
        self.cuda = self.device.type == "cuda"
        self.out_dir = Path(cfg.out_dir)
        self.model_config = cfg.model_config()
        self.model = build_student(cfg, self.model_config)
        self.teacher = build_teacher(cfg, self.device)
        initialise_student(self.model, cfg, self.teacher)
        # a frozen student backbone equal to the teacher's is run once for both networks
        self.shared_backbone = shares_backbone(cfg, self.model, self.teacher)
        self.ort_teacher = build_ort_teacher(cfg, self.teacher)
        find_unused = self.dist.distributed and ddp_utils.has_unused_parameters(self.model)
        self.channels_last = select_channels_last(cfg, self.cuda)
        self.model = place_model(self.model, cfg, self.device, self.dist, channels_last=self.channels_last)
        self.criterion = build_criterion(cfg, self.model_config)
        self.distill = DistillationLoss(cfg.distill) if self.teacher is not None else None
        self.optimizer = build_optimizer(cfg, self.model)
        self.samples, self.dataset = build_data(cfg, self.model_config)
        self.steps_per_epoch = count_steps_per_epoch(cfg, len(self.samples))
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.scheduler = build_scheduler(cfg, self.optimizer, self.total_steps)
        self.amp_dtype = select_amp_dtype(cfg, self.cuda)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = build_ema(cfg, self.model)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.priors = self.priors_for(cfg.image_size)
        # what a data-parallel step does differently: loss denominators and reported terms of the global batch
        self.batch_scope: _LocalBatch | _GlobalBatch = _GlobalBatch(self.dist) if self.dist.distributed else _LocalBatch()
        if resume is not None:
            self.load_checkpoint(resume)
        # the module the training forward runs through: DDP over ``self.model`` in a distributed run
        # (``self.model`` stays the unwrapped network: checkpoints, EMA, export and evaluation use it)
        # (with a shared backbone it maps backbone features to outputs: ``_HeadOnly``)
        self.net = build_training_net(self.model, self.dist, self.device, shared_backbone=self.shared_backbone,
                                      find_unused_parameters=find_unused)

    def priors_for(self, size: int) -> torch.Tensor:
        """Priors ``[N, 4]`` of a square network input of ``size`` pixels (cached by the priors module)."""
        return generate_priors((size, size), self.model_config.priors, device=self.device)

    # -- checkpoints (featherface.train.checkpoint) ----------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """The checkpoint dict of the run as it stands (see :func:`featherface.train.checkpoint.checkpoint_state`)."""
        return checkpoint_state(
            config=self.cfg, model_config=self.model_config, step=self.step, model=self.model, ema=self.ema,
            optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
        )

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        return save_checkpoint(self.checkpoint_state(), path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint of this model config: weights, EMA, optimizer, scheduler, scaler, RNG, step."""
        state = read_checkpoint(path, model_config=self.model_config, device=self.device)
        self.step = restore_checkpoint(
            state, model=self.model, ema=self.ema, optimizer=self.optimizer, scheduler=self.scheduler,
            scaler=self.scaler, where=path,
        )
        logger.info("resumed from %s at step %d", path, self.step)

    # -- training ----------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """Whether this process logs, checkpoints, validates and exports (rank 0, or not distributed)."""
        return self.dist.is_main

    def close(self) -> None:
        """Leave the process group if this trainer created it (a no-op in a single process)."""
        ddp_utils.cleanup(self.dist)

    def data_loader(self, epoch: int, start_batch: int = 0) -> DataLoader:
        """The loader of ``epoch`` from batch ``start_batch`` on: this rank's slices of the seeded global
        batches (see :class:`EpochBatchSampler`), augmented for ``epoch``."""
        self.dataset.set_epoch(epoch)
        sampler = EpochBatchSampler(len(self.dataset), self.cfg.batch_size, self.cfg.seed, epoch, start_batch,
                                    rank=self.dist.rank, world_size=self.dist.world_size,
                                    sizes=self.cfg.image_sizes, base_size=self.cfg.image_size)
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
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        priors = self.priors_for(images.shape[-1])
        matched = self.criterion.match(targets, priors)
        norm = self.batch_scope.normalizers(matched)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            feats, t_out = self.teacher_pass(images)
            out = self.net(feats) if feats is not None else self.net(images)
            task = self.criterion(out, None, priors, matched=matched, normalizers=norm.task)
            if t_out is not None and self.distill is not None:
                distill_terms = self.distill(out, t_out, matched[1], pos_normalizer=norm.distill)
                terms = combined_loss(task, distill_terms, self.cfg.distill)
                total = terms["total"]
            else:
                terms = dict(task)
                total = task["loss"]
        reported = self.batch_scope.report(terms | {"total": total})
        if not torch.isfinite(reported["total"]):  # in a distributed run every rank sees the same value and stops together
            raise FloatingPointError(f"non-finite loss at step {self.step}: {({k: float(v) for k, v in reported.items()})}")
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
        return {k: float(v) for k, v in reported.items()}

    def _log(self, record: dict[str, float]) -> None:
        self.history.append(record)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def eval_model(self) -> nn.Module:
        """The weights to evaluate/export: the EMA average when enabled, else the live model."""
        return self.ema.module if self.ema is not None else self.model

    def fit(self) -> list[dict[str, float]]:
        """Train until ``total_steps``; returns the logged records.

        On the CPU, denormal floats are flushed to zero while it runs (tiny gradients and attention
        products late in training are ~100x slower on x86 CPUs otherwise; no result that matters
        changes). The process-wide flag is cleared again when ``fit`` returns or raises.
        """
        flush = not self.cuda and torch.set_flush_denormal(True)
        try:
            return self._fit()
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _fit(self) -> list[dict[str, float]]:
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
        bar = progress_bar(self.total_steps, unit="step", enabled=cfg.progress and main, initial=self.step)
        window: list[dict[str, float]] = []
        t0 = time.perf_counter()
        seen = 0
        while self.step < self.total_steps:
            epoch, start_batch = divmod(self.step, self.steps_per_epoch)
            for images, targets in self.data_loader(epoch, start_batch):
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
        from featherface.train.widerface_eval import evaluate_detector_on_widerface

        model = self.eval_model()
        res = evaluate_detector_on_widerface(
            model, self.model_config, self.cfg.val_widerface, subset=self.cfg.val_subset,
            max_size=self.cfg.val_max_size, device=self.device, progress=False,
        )
        rec = {"step": self.step, "epoch": float(epoch), **{f"val_{k}": float(v) for k, v in res.items() if k in ("easy", "medium", "hard")}}
        logger.info("validation (%d-image val subset): %s", self.cfg.val_subset, rec)
        self._log(rec)


# -- the parts of a run (composed by Trainer.__init__, in this order) -------------------------------


def select_device(cfg: TrainConfig) -> torch.device:
    """``cfg.device``, else CUDA when available, else the CPU; under torchrun a CUDA run takes the GPU
    of its ``LOCAL_RANK`` (one GPU per process)."""
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _, world, local_rank = ddp_utils.env_world()
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
    return device


def join_process_group(cfg: TrainConfig, device: torch.device) -> ddp_utils.DistContext:
    """The run's process-group context (:func:`featherface.train.distributed.setup`); a data-parallel
    run checks that the global ``batch_size`` splits evenly over its processes."""
    ctx = ddp_utils.setup(device)
    if ctx.distributed and cfg.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (the global batch) is not divisible by the "
                         f"{ctx.world_size} processes of this run")
    return ctx


def build_student(cfg: TrainConfig, model_config: ModelConfig) -> nn.Module:
    """The network to train, on the CPU: built right after ``torch.manual_seed(cfg.seed)`` (so its
    initial weights depend on the seed alone), then the ImageNet backbone (``backbone_weights``) and a
    weights folder to start from (``init_weights``) loaded into it when given."""
    torch.manual_seed(cfg.seed)
    model = build_model(model_config)
    if cfg.backbone_weights:
        load_backbone_weights(model, cfg.backbone_weights)
    if cfg.init_weights:  # fine-tune / continue from a weights folder of the same model config
        load_init_weights(model, cfg.init_weights, model_config)
    return model


def build_teacher(cfg: TrainConfig, device: torch.device) -> nn.Module | None:
    """The frozen distillation teacher on ``device`` (eval mode, no gradients), or ``None`` without
    ``cfg.teacher``."""
    return load_teacher(cfg.teacher, device) if cfg.teacher else None


def initialise_student(model: nn.Module, cfg: TrainConfig, teacher: nn.Module | None) -> None:
    """In place: the teacher's backbone copied into the student (``backbone_from_teacher``) and the
    class biases set to the face prior (``cls_prior``), both only when the run does not start from
    ``init_weights``; then the backbone frozen (``freeze_backbone``)."""
    if cfg.backbone_from_teacher and not cfg.init_weights:
        assert teacher is not None  # TrainConfig checks it
        model.backbone.load_state_dict(teacher.backbone.state_dict(), strict=True)  # type: ignore[union-attr]
    if cfg.cls_prior is not None and not cfg.init_weights:
        for m in model.modules():
            if isinstance(m, DetectionHeads):
                m.init_class_prior(cfg.cls_prior)
    if cfg.freeze_backbone:
        for prm in model.backbone.parameters():  # type: ignore[union-attr]
            prm.requires_grad_(False)


def shares_backbone(cfg: TrainConfig, model: nn.Module, teacher: nn.Module | None) -> bool:
    """Whether the student's backbone is frozen and equal to the teacher's, so that one backbone pass
    serves both networks (:meth:`Trainer.teacher_pass`)."""
    return bool(
        cfg.freeze_backbone and teacher is not None and _same_state(model.backbone, teacher.backbone)  # type: ignore[arg-type]
    )


def build_ort_teacher(cfg: TrainConfig, teacher: nn.Module | None) -> OnnxRuntimeTeacher | None:
    """The teacher as an ONNX Runtime graph (``teacher_runtime: onnxruntime``), else ``None``."""
    if teacher is None or cfg.teacher_runtime != "onnxruntime":
        return None
    from featherface.train.teacher import OnnxRuntimeTeacher

    return OnnxRuntimeTeacher(teacher, num_threads=cfg.threads)


def select_channels_last(cfg: TrainConfig, cuda: bool) -> bool:
    """Whether the network and its inputs use the channels-last memory format (``channels_last`` on
    CUDA, ``cpu_channels_last`` on the CPU)."""
    return (cfg.channels_last and cuda) or (cfg.cpu_channels_last and not cuda)


def place_model(model: nn.Module, cfg: TrainConfig, device: torch.device, dist: ddp_utils.DistContext, *,
                channels_last: bool) -> nn.Module:
    """``model`` with synchronised BatchNorm (a data-parallel run with ``sync_bn``), moved to ``device``,
    in the channels-last format when ``channels_last``."""
    if dist.distributed and cfg.sync_bn:
        model = ddp_utils.convert_sync_batchnorm(model, cuda=device.type == "cuda")
    model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def build_criterion(cfg: TrainConfig, model_config: ModelConfig) -> MultiBoxLoss:
    """The MultiBox task loss of the model's anchors with the run's mining and term weights."""
    return MultiBoxLoss(model_config.priors, cfg.neg_pos_ratio, weights=cfg.loss_weights,
                        min_negatives=cfg.min_negatives)


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (frozen ones left out), at ``cfg.lr`` and ``cfg.weight_decay``."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                             lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_data(cfg: TrainConfig, model_config: ModelConfig) -> tuple[list[FaceSample], FaceDataset]:
    """The training samples of every ``cfg.train_data`` source and the dataset that augments them
    (:class:`TrainTransform` with the model's ``mean_bgr``; item ``i`` of epoch ``e`` drawn from
    ``(cfg.seed, e, i)``): items ``(image[3, S, S] float32, targets[M, 15])``."""
    samples: list[FaceSample] = [s for src in cfg.train_data for s in src.load()]
    if not samples:
        raise ValueError("TrainConfig.train_data gives no training images")
    dataset = FaceDataset(
        samples,
        TrainTransform(image_size=cfg.image_size, mean_bgr=model_config.mean_bgr,
                       negative_frames=cfg.negative_frames, background_crops=cfg.background_crops,
                       whole_images=cfg.whole_images,
                       **({"crop_scales": cfg.crop_scales} if cfg.crop_scales else {})),
        seed=cfg.seed,
    )
    return samples, dataset


def count_steps_per_epoch(cfg: TrainConfig, num_samples: int) -> int:
    """Full global batches in one pass over ``num_samples`` images (the last partial batch is dropped)."""
    steps = num_samples // cfg.batch_size
    if steps == 0:
        raise ValueError(f"{num_samples} images are fewer than one batch of {cfg.batch_size}")
    return steps


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer,
                    total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle LR schedule over ``total_steps`` (stepped once per training step)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=total_steps, pct_start=cfg.pct_start,
        div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor,
    )


def select_amp_dtype(cfg: TrainConfig, cuda: bool) -> torch.dtype | None:
    """The autocast dtype: bfloat16 (float16 where the GPU lacks it) with ``amp`` on CUDA, bfloat16
    with ``cpu_bf16`` on the CPU, else ``None`` (float32)."""
    if cuda and cfg.amp:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if not cuda and cfg.cpu_bf16:
        return torch.bfloat16
    return None


def build_ema(cfg: TrainConfig, model: nn.Module) -> torch.optim.swa_utils.AveragedModel | None:
    """The exponential moving average of ``model``'s weights and buffers (``ema_decay``), or ``None``."""
    if not cfg.ema_decay:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
    )


def build_training_net(model: nn.Module, dist: ddp_utils.DistContext, device: torch.device, *,
                       shared_backbone: bool, find_unused_parameters: bool) -> nn.Module:
    """The module the training forward runs through: ``model``, or its head alone (:class:`_HeadOnly`)
    when the backbone is shared with the teacher; wrapped in ``DistributedDataParallel`` in a
    data-parallel run."""
    net: nn.Module = _HeadOnly(model) if shared_backbone else model
    if dist.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )
    return net


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


def train(config: TrainConfig | str | os.PathLike, *, resume: str | os.PathLike | None = None) -> Trainer:
    """Train from a config (object or YAML/JSON path); returns the finished :class:`Trainer`."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_file(config)
    trainer = Trainer(cfg, resume=resume)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer


__all__ = [
    "LossNormalizers",
    "Trainer",
    "build_criterion",
    "build_data",
    "build_ema",
    "build_optimizer",
    "build_ort_teacher",
    "build_scheduler",
    "build_student",
    "build_teacher",
    "build_training_net",
    "count_steps_per_epoch",
    "initialise_student",
    "join_process_group",
    "place_model",
    "select_amp_dtype",
    "select_channels_last",
    "select_device",
    "shares_backbone",
    "train",
]
