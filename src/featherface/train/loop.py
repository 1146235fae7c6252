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
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from featherface._models import count_parameters
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
from featherface.train.sampler import EpochBatchSampler

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
        self.out_dir = Path(cfg.out_dir)
        self.model_config = cfg.model_config()
        torch.manual_seed(cfg.seed)
        self.model = build_model(self.model_config)
        if cfg.backbone_weights:
            load_backbone_weights(self.model, cfg.backbone_weights)
        if cfg.init_weights:  # fine-tune / continue from a weights folder of the same model config
            load_init_weights(self.model, cfg.init_weights, self.model_config)
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
        self.channels_last = (cfg.channels_last and self.cuda) or (cfg.cpu_channels_last and not self.cuda)
        if self.channels_last:
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
                           negative_frames=cfg.negative_frames, background_crops=cfg.background_crops,
                           whole_images=cfg.whole_images,
                           **({"crop_scales": cfg.crop_scales} if cfg.crop_scales else {})),
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
        elif not self.cuda and cfg.cpu_bf16:
            self.amp_dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        if cfg.ema_decay:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
            )
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
        self.net: nn.Module = _HeadOnly(self.model) if self.shared_backbone else self.model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.cuda else None,
                find_unused_parameters=find_unused,
            )

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
        bar = _progress(self.total_steps, self.step, cfg.progress) if main else None
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


__all__ = ["LossNormalizers", "Trainer", "train"]
