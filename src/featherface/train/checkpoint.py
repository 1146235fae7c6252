"""Training checkpoints and the weights a run starts from.

A checkpoint (``epochNNNN.pt``, ``stepNNNNNNN.pt``, ``last.pt``) is a ``torch.save`` dict of tensors
and JSON strings (loaded with ``weights_only=True``): the run's :class:`TrainConfig` and model config,
the step, the model, EMA, optimizer, scheduler and scaler states and the torch RNG state, so that a
resumed run continues exactly (see :mod:`featherface.train.loop`). It is always written from the
unwrapped model, so it resumes in any number of processes.

Starting weights: :func:`load_backbone_weights` (an ImageNet backbone file),
:func:`load_init_weights` (a weights folder of the same model config, to fine-tune or continue) and
:func:`load_teacher` (a frozen V1 teacher for distillation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featherface._models.config import ModelConfig
from featherface._weights.loader import load_network
from featherface.errors import ConfigMismatchError
from featherface.train.config import TrainConfig

CHECKPOINT_VERSION = 1


def checkpoint_state(
    *,
    config: TrainConfig,
    model_config: ModelConfig,
    step: int,
    model: nn.Module,
    ema: torch.optim.swa_utils.AveragedModel | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> dict[str, Any]:
    """The checkpoint dict of a run at ``step`` (``model`` is the unwrapped network)."""
    return {
        "version": CHECKPOINT_VERSION,
        "config": json.dumps(config.to_dict()),
        "model_config": json.dumps(model_config.to_dict()),
        "step": step,
        "model": model.state_dict(),
        "ema": None if ema is None else ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (a temporary file renamed into place); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, p)  # never leave a half-written checkpoint behind
    return p


def read_checkpoint(
    path: str | os.PathLike, *, model_config: ModelConfig | None = None, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint onto ``device`` and check its version and, when ``model_config`` is given,
    that it is for that model config."""
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {state.get('version')}")
    saved_model = ModelConfig.from_dict(json.loads(state["model_config"]))
    if model_config is not None and saved_model != model_config:
        raise ValueError(f"{path}: checkpoint is for model config {saved_model}, not {model_config}")
    return state  # type: ignore[no-any-return]


def restore_checkpoint(
    state: Mapping[str, Any],
    *,
    model: nn.Module,
    ema: torch.optim.swa_utils.AveragedModel | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    where: str | os.PathLike = "checkpoint",
) -> int:
    """Load a checkpoint dict (from :func:`read_checkpoint`) into a run's objects, restore the torch
    RNG state and return the step to continue from. ``where`` names the checkpoint in errors."""
    model.load_state_dict(state["model"], strict=True)
    if ema is not None:
        if state["ema"] is None:
            raise ValueError(f"{where}: checkpoint has no EMA state but ema_decay is set")
        ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"].cpu())
    return int(state["step"])


def load_checkpoint_model(
    checkpoint: str | os.PathLike, *, use_ema: bool = True
) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """The network of a checkpoint, in eval mode on the CPU, with its model config and its run's
    :class:`TrainConfig` as a dict: the EMA weights when the checkpoint has them and ``use_ema``,
    else the live weights. The checkpoint is read (and its version checked) by :func:`read_checkpoint`."""
    from featherface._weights.files import strip_module_prefix
    from featherface._weights.registry import build_model

    state = read_checkpoint(checkpoint)
    config = ModelConfig.from_dict(json.loads(state["model_config"]))
    model = build_model(config)
    weights = state["model"]
    if use_ema and state.get("ema") is not None:
        # AveragedModel's state: the network under ``module.``, plus its ``n_averaged`` counter
        weights = strip_module_prefix({k: v for k, v in state["ema"].items() if k.startswith("module.")})
    model.load_state_dict(weights, strict=True)
    return model.eval(), config, json.loads(state["config"])


def load_backbone_weights(model: nn.Module, path: str | os.PathLike) -> int:
    """Load an ImageNet MobileNetV1-0.25 safetensors file into ``model.backbone`` (strict, ``fc.*`` dropped)."""
    from featherface._weights.files import load_state_dict_file, strip_module_prefix

    state = strip_module_prefix(load_state_dict_file(path))
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    backbone = model.backbone  # type: ignore[attr-defined]
    missing, unexpected = set(backbone.state_dict()) - set(state), set(state) - set(backbone.state_dict())
    if missing or unexpected:
        raise ValueError(f"{path}: backbone keys do not match: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    backbone.load_state_dict(state, strict=True)
    return len(state)


def load_init_weights(model: nn.Module, path: str | os.PathLike, model_config: ModelConfig) -> None:
    """Load a weights folder (``config.json`` + ``model.safetensors``, e.g. an exported run or the
    packaged weights) into ``model``; its config must equal ``model_config`` (``init_weights``)."""
    try:
        loaded = load_network(weights=path, expected_config=model_config)
    except ConfigMismatchError as exc:
        raise ValueError(f"init_weights {path}: {exc} (this run's model)") from None
    model.load_state_dict(loaded.network.state_dict(), strict=True)


def load_teacher(path: str | os.PathLike, device: torch.device) -> nn.Module:
    """A frozen V1 teacher from the authors' reference file or from one of our weight folders."""
    from featherface._weights.convert import load_reference_v1
    from featherface.errors import ConversionError

    p = Path(path)
    try:
        teacher = load_reference_v1(p) if p.is_file() else None
    except ConversionError:
        teacher = None
    if teacher is None:
        teacher = load_network(weights=p).network
    teacher = teacher.to(device).eval()
    for prm in teacher.parameters():
        prm.requires_grad_(False)
    return teacher


__all__ = [
    "CHECKPOINT_VERSION",
    "checkpoint_state",
    "load_backbone_weights",
    "load_checkpoint_model",
    "load_init_weights",
    "load_teacher",
    "read_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]
