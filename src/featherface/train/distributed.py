"""Data-parallel training on ``torch.distributed``: process group, DDP helpers, CPU SyncBatchNorm.

A run is distributed when it is launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment, with
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) or when the caller has already
initialised the default process group. :func:`setup` then joins the group (``nccl`` on CUDA,
``gloo`` on CPU) and returns a :class:`DistContext`; otherwise it returns the single-process context
and touches nothing, so that single-process training runs exactly the code it always ran.

Design (see :class:`featherface.train.loop.Trainer`): the configured ``batch_size`` is the *global*
batch; every rank takes a contiguous ``batch_size / world_size`` slice of the same seeded global
batch (:class:`featherface.train.sampler.EpochBatchSampler`), the MultiBox and distillation terms
are normalised by global positive counts, so that the mean of the per-rank losses, which is what
DDP's gradient averaging optimises, is the loss of the global batch.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

#: How long a collective may wait for the other ranks (rank 0 validating or writing a checkpoint
#: while the others wait in the next step's all-reduce counts here). Override with
#: ``FEATHERFACE_DIST_TIMEOUT_S``.
DEFAULT_TIMEOUT_S = 3600


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run.

    Attributes:
        rank: global rank (0 is the "main" process: logging, checkpoints, validation, export).
        world_size: number of processes (1: not distributed).
        local_rank: rank on this machine (selects the CUDA device).
        owns_group: this context initialised the process group and :func:`cleanup` destroys it.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the torchrun environment (``(0, 1, 0)`` when absent)."""

    def read(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        try:
            return int(value) if value else default
        except ValueError:
            raise ValueError(f"environment variable {name}={value!r} is not an integer") from None

    world = read("WORLD_SIZE", 1)
    rank = read("RANK", 0)
    local = read("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"invalid torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def setup(device: torch.device) -> DistContext:
    """Join (or adopt) the default process group; the single-process context when not distributed.

    ``device`` decides the backend: ``nccl`` for CUDA, ``gloo`` otherwise.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), env_world()[2], owns_group=False)
    rank, world, local = env_world()
    if world == 1:
        return DistContext()
    if not dist.is_available():  # pragma: no cover - every official torch build has it
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=float(os.environ.get("FEATHERFACE_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timeout)
    logger.debug("rank %d/%d joined the %s process group", rank, world, backend)
    return DistContext(rank, world, local, owns_group=True)


def cleanup(ctx: DistContext) -> None:
    """Destroy the process group if ``ctx`` created it (local: no collective, safe after an error)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """In-place sum over ranks (no-op in a single process)."""
    if ctx.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def reduce_terms(terms: Mapping[str, torch.Tensor], ctx: DistContext) -> dict[str, torch.Tensor]:
    """Loss terms averaged over ranks (counts such as ``num_pos`` are summed), with one all-reduce.

    The returned tensors are detached; use them for logging and for the finiteness check that all
    ranks must agree on (a rank that raised alone would leave the others waiting).
    """
    keys = list(terms)
    packed = torch.stack([terms[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    out = {}
    for i, k in enumerate(keys):
        out[k] = packed[i] if k.endswith("num_pos") else packed[i] / ctx.world_size
    return out


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks with a gradient: the backward pass sums the output gradients over ranks too
    (the gradient of ``sum_q loss_q`` with respect to this rank's contribution)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum_autograd(t: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over the ranks of the default process group."""
    return _AllReduceSum.apply(t)  # type: ignore[no-any-return]


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` normalising with the statistics of the *global* batch across all ranks.

    ``torch.nn.SyncBatchNorm`` accepts only GPU inputs; this module works on any device and backend
    (gloo on CPU), which is what the CI test and CPU clusters need. In training mode with a process
    group of more than one rank, the per-channel mean and (biased) variance are computed over every
    rank's slice of the batch with two autograd-aware all-reduces (sum, then sum of squared
    deviations: the same two-pass arithmetic as a single process, no ``E[x^2] - E[x]^2``
    cancellation), and the running statistics are updated with the unbiased global variance, as
    ``F.batch_norm`` does on the whole batch. Otherwise it is exactly ``BatchNorm2d``. Its state dict is
    the same as ``BatchNorm2d``'s.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Module signature
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        all_reduce = all_reduce_sum_autograd
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else float(self.momentum)
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        dims = (0, 2, 3)
        count = torch.full((1,), input.numel() / input.shape[1], dtype=input.dtype, device=input.device)
        packed = all_reduce(torch.cat([input.sum(dim=dims), count]))
        n = packed[-1]
        mean = packed[:-1] / n
        centred = input - mean[None, :, None, None]
        var = all_reduce((centred * centred).sum(dim=dims)) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.running_mean.mul_(1.0 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_var.mul_(1.0 - factor).add_(unbiased, alpha=factor)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out


def convert_sync_batchnorm(module: nn.Module, *, cuda: bool) -> nn.Module:
    """Replace every ``BatchNorm2d`` by a synchronised one (``nn.SyncBatchNorm`` on CUDA,
    :class:`GlobalBatchNorm2d` elsewhere), keeping the same parameter and buffer objects.

    Call it before creating the optimizer; state dict keys are unchanged, so checkpoints load into
    unsynchronised models (single-process resume, export) and back.
    """
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if type(module) is nn.BatchNorm2d:
        new = GlobalBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child, cuda=False)
        if converted is not child:
            setattr(module, name, converted)
    return module


def has_unused_parameters(model: nn.Module, size: int = 128) -> bool:
    """Whether a training forward/backward (on a copy, tiny input) leaves a trainable parameter without a
    gradient: DDP must then be told ``find_unused_parameters=True`` (e.g. a V2 Ultra technique switched
    off). Runs on a deep copy on CPU, so the model's BatchNorm statistics are untouched."""
    import copy

    probe = copy.deepcopy(model).cpu().train()
    with torch.random.fork_rng(devices=[]):
        out = probe(torch.randn(2, 3, size, size))
    sum(o.float().sum() for o in out).backward()
    return any(p.requires_grad and p.grad is None for p in probe.parameters())


__all__ = [
    "DistContext",
    "GlobalBatchNorm2d",
    "all_reduce_sum",
    "barrier",
    "cleanup",
    "convert_sync_batchnorm",
    "env_world",
    "has_unused_parameters",
    "reduce_terms",
    "setup",
]
