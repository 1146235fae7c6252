"""Training configuration: :class:`TrainConfig` (every setting a run depends on) and :class:`DataSource`.

A config is a YAML or JSON mapping (:meth:`TrainConfig.from_file`); unknown keys are rejected, and
paths are resolved relative to the config file's folder. The config is saved into every checkpoint
and export (:meth:`TrainConfig.to_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from featherface._models.config import ModelConfig, V2UltraTechniques
from featherface._weights.registry import get_config
from featherface.train.data import (
    FaceSample,
    merge_labels,
    read_jsonl,
    read_retinaface_labels,
    read_voc,
    read_widerface_bbx_gt,
)
from featherface.train.distill import DistillConfig
from featherface.train.loss import LossWeights


@dataclass(frozen=True)
class DataSource:
    """One labelled image collection.

    ``format``: ``"widerface"`` (official ``bbx_gt`` text), ``"retinaface"`` (``label.txt`` with
    landmarks), ``"jsonl"`` (see :func:`featherface.train.data.read_jsonl`) or ``"voc"`` (``labels`` a
    folder of Pascal VOC XML files, :func:`featherface.train.data.read_voc`). ``repeat`` > 1
    oversamples the source. ``exclude``: a text file of image paths (relative to ``images``, one per
    line, ``#`` comments) left out of training, e.g. the dev split (:mod:`featherface.train.devset`).
    ``merge_jsonl``: a JSON-lines label file of the same images (paths relative to ``images``, e.g. the
    teacher's labels) whose faces are merged into these (:func:`featherface.train.data.merge_labels`:
    these faces are kept where that file has none).
    """

    format: Literal["widerface", "retinaface", "jsonl", "voc"]
    labels: str
    images: str
    repeat: int = 1
    exclude: str | None = None
    merge_jsonl: str | None = None

    def load(self) -> list[FaceSample]:
        if self.format == "widerface":
            samples = read_widerface_bbx_gt(self.labels, self.images, require_images=True)
        elif self.format == "retinaface":
            samples = read_retinaface_labels(self.labels, self.images)
        elif self.format == "jsonl":
            samples = read_jsonl(self.labels, self.images)
        elif self.format == "voc":
            samples = read_voc(self.labels, self.images)
        else:
            raise ValueError(f"unknown data format {self.format!r}; use widerface, retinaface, jsonl or voc")
        if self.merge_jsonl:
            samples = merge_labels(samples, read_jsonl(self.merge_jsonl, self.images))
        if self.exclude:
            root = Path(self.images)
            excluded = {line.strip() for line in Path(self.exclude).read_text(encoding="utf-8").splitlines()
                        if line.strip() and not line.startswith("#")}
            samples = [s for s in samples if s.image_path.relative_to(root).as_posix() not in excluded]
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

    ``image_sizes``: each batch runs at a network size drawn from these (seeded), with about
    ``batch_size * (image_size / size)^2`` items so that a step costs about the same; large sizes put
    the largest anchors inside the image instead of against its border, as a large photo does.
    Scale coverage (:class:`featherface.train.augment.TrainTransform`): ``crop_scales`` (default the
    authors' 0.3-1.0 of the short side), ``background_crops`` (share of magnified face-free windows)
    and ``whole_images`` (share of whole photos padded and downscaled). ``cpu_bf16`` runs the forward
    pass under bfloat16 autocast on the CPU (fast where the CPU has AMX or AVX-512 BF16) and
    ``cpu_channels_last`` uses the channels-last layout on the CPU (``amp`` and ``channels_last``
    apply to CUDA).
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
    image_sizes: tuple[int, ...] | None = None
    crop_scales: tuple[float, ...] | None = None
    background_crops: float = 0.0
    whole_images: float = 0.0
    cpu_bf16: bool = False
    cpu_channels_last: bool = False
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
        if self.crop_scales is not None:
            object.__setattr__(self, "crop_scales", tuple(float(v) for v in self.crop_scales))
        if self.image_sizes is not None:
            sizes = tuple(int(v) for v in self.image_sizes)
            if not sizes or any(v <= 0 or v % 32 for v in sizes):
                raise ValueError(f"TrainConfig: image_sizes must be positive multiples of 32, got {self.image_sizes!r}")
            object.__setattr__(self, "image_sizes", sizes)
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
            if s.get("exclude"):
                s["exclude"] = path(s["exclude"])
            if s.get("merge_jsonl"):
                s["merge_jsonl"] = path(s["merge_jsonl"])
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


__all__ = ["DataSource", "TrainConfig"]
