"""Prior (anchor) generation: the only copy, used by inference, training and export.

Priors are ``Tensor[N, 4]`` in ``(cx, cy, w, h)`` form, normalised by the input width/height.
For level ``k`` with stride ``s`` the feature map is ``ceil(H/s) x ceil(W/s)``; the iteration order
is level, row ``i``, column ``j``, anchor size, which is also the row order of the network's outputs.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the model config is a layer above the ops; priors read its attributes only
    from featherface._models.config import PriorConfig

__all__ = ["generate_priors", "priors_like", "priors_for_shape", "feature_map_sizes", "num_priors"]


def feature_map_sizes(image_size: tuple[int, int], cfg: PriorConfig) -> list[tuple[int, int]]:
    """``[(ceil(H/step), ceil(W/step)) for each level]`` for an input of ``(H, W)`` pixels."""
    h, w = image_size
    return [(math.ceil(h / s), math.ceil(w / s)) for s in cfg.steps]


def num_priors(image_size: tuple[int, int], cfg: PriorConfig) -> int:
    """Number of priors for an ``(H, W)`` input (16,800 at 640x640 with the default layout)."""
    return sum(fh * fw * len(m) for (fh, fw), m in zip(feature_map_sizes(image_size, cfg), cfg.min_sizes))


def priors_for_shape(height: torch.Tensor, width: torch.Tensor, cfg: PriorConfig) -> torch.Tensor:
    """Priors ``Tensor[N, 4]`` for an input of ``height x width`` given as 0-d int64 tensors.

    The one copy of the prior arithmetic: :func:`generate_priors` calls it (and caches the result),
    and the ONNX detector graph (:class:`featherface._export.DetectionGraph`) traces it with the input's
    dynamic shape. Feature maps of ``ceil(H/step) x ceil(W/step)``, centres ``(i + 0.5) * step / H``
    computed in float64 (like the reference's Python floats) and rounded once to float32; rows
    ordered level, row, column, anchor size.
    """
    dt = torch.float64
    hf, wf = height.to(dt), width.to(dt)
    chunks = []
    for step, sizes in zip(cfg.steps, cfg.min_sizes):
        fh = torch.div(height + (step - 1), step, rounding_mode="floor")  # ceil(H / step)
        fw = torch.div(width + (step - 1), step, rounding_mode="floor")
        cy = (torch.arange(fh, dtype=dt) + 0.5) * step / hf  # type: ignore[call-overload]  # [fh]
        cx = (torch.arange(fw, dtype=dt) + 0.5) * step / wf  # type: ignore[call-overload]  # [fw]
        s = torch.tensor(sizes, dtype=dt)
        sw, sh = s / wf, s / hf  # [a]
        # broadcast to [fh, fw, a]: adding exact zeros keeps every value bit-identical
        zy, zx, za = cy[:, None, None] * 0.0, cx[None, :, None] * 0.0, sw[None, None, :] * 0.0
        level = torch.stack(
            [cx[None, :, None] + zy + za, cy[:, None, None] + zx + za, sw[None, None, :] + zy + zx,
             sh[None, None, :] + zy + zx],
            dim=-1,
        )
        chunks.append(level.reshape(-1, 4))
    out = torch.cat(chunks, 0)
    if cfg.clip:
        out = out.clamp(0.0, 1.0)
    return out.to(torch.float32)



@lru_cache(maxsize=64)
def _priors_cpu(image_size: tuple[int, int], cfg: PriorConfig) -> torch.Tensor:
    h, w = image_size
    out = priors_for_shape(torch.tensor(h), torch.tensor(w), cfg)
    out.requires_grad_(False)
    return out


def generate_priors(
    image_size: tuple[int, int],
    cfg: PriorConfig | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Priors for an input of ``image_size = (H, W)`` pixels.

    Returns:
        ``Tensor[N, 4]`` of ``(cx, cy, w, h)`` normalised to ``[0, 1]`` by ``(W, H)``. The CPU float32
        tensor is cached per ``(H, W, cfg)``; treat the result as read-only.
    """
    cfg = cfg or PriorConfig()
    h, w = int(image_size[0]), int(image_size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"generate_priors: image size must be positive, got {(h, w)}")
    pri = _priors_cpu((h, w), cfg)
    if device is not None or dtype != torch.float32:
        pri = pri.to(device=device, dtype=dtype)
    return pri


def priors_like(
    image_size: tuple[int, int], cfg: PriorConfig, reference: torch.Tensor
) -> torch.Tensor:
    """Priors on the device/dtype of ``reference``, cached per device so repeated calls do not copy."""
    if reference.device.type == "cpu" and reference.dtype == torch.float32:
        return generate_priors(image_size, cfg)
    return _priors_on(int(image_size[0]), int(image_size[1]), cfg, str(reference.device), reference.dtype)


@lru_cache(maxsize=32)
def _priors_on(h: int, w: int, cfg: PriorConfig, device: str, dtype: torch.dtype) -> torch.Tensor:
    return _priors_cpu((h, w), cfg).to(device=device, dtype=dtype)
