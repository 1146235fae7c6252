"""Network definitions. Use :func:`featherface.build_model` rather than these classes directly."""

from __future__ import annotations

from torch import nn

from featherface._models.config import ARCHS, ModelConfig
from featherface._models.deform import ModulatedDeformConv2d
from featherface._models.featherface_v1 import BiFPNLayer, FeatherFaceV1
from featherface._models.featherface_v2_ultra import FeatherFaceV2Ultra

__all__ = [
    "FeatherFaceV1",
    "FeatherFaceV2Ultra",
    "NETWORKS",
    "create_network",
    "count_parameters",
    "thop_equivalent_parameters",
]


NETWORKS: dict[str, type[nn.Module]] = {
    "featherface_v1": FeatherFaceV1,
    "featherface_v2_ultra": FeatherFaceV2Ultra,
}
"""The architecture -> network class table: the one place that maps ``ModelConfig.arch`` to code."""
if set(NETWORKS) != set(ARCHS):  # pragma: no cover - a new arch needs both its name and its class
    raise ImportError(f"featherface._models.NETWORKS {sorted(NETWORKS)} does not cover config.ARCHS {list(ARCHS)}")


def create_network(config: ModelConfig) -> nn.Module:
    """Instantiate the randomly initialised network for ``config`` (:data:`NETWORKS` of ``config.arch``).

    Prefer :func:`featherface.build_model` (a name or a config) or, with weights,
    :func:`featherface.load_model`."""
    return NETWORKS[config.arch](config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """True number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def thop_equivalent_parameters(model: nn.Module) -> int:
    """Parameter count as the ``thop`` profiler reports it (the paper's "0.49 M" for V1).

    ``thop`` misses parameters that are not owned by a standard layer it hooks: the main weight of
    every deformable conv (103,680 in V1) and the BiFPN fusion scalars (30 in V1). V1 gives 488,661;
    the true count (:func:`count_parameters`) is 592,371.
    """
    missed = 0
    for m in model.modules():
        if isinstance(m, ModulatedDeformConv2d):
            missed += m.weight.numel()
        elif isinstance(m, BiFPNLayer):
            missed += sum(p.numel() for p in (m.p4_w1, m.p3_w1, m.p4_w2, m.p5_w2))
    return count_parameters(model) - missed
