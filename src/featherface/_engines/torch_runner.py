"""The torch engine: a PyTorch module under ``torch.inference_mode``, with a per-call thread policy.

By default the module is the BatchNorm-folded copy of the network
(:func:`featherface._models.fuse.fuse_for_inference`), in channels-last memory layout on CPU
(:func:`featherface._engines.make_runner` decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from featherface._engines.base import BatchSpec
from featherface.detection import RawOutputs

__all__ = ["SINGLE_THREAD_MAX_PIXELS", "torch_threads", "TorchRunner"]


#: On the CPU, a call whose network input holds at most this many pixels (summed over the batch)
#: runs on one torch thread unless ``num_threads`` says otherwise; larger ones use the process's
#: thread count. Chosen by measurement (``benchmarks/shared_machine.py``, docs/concepts.md): two
#: processes that each run torch's default of one thread per core on the same cores slow each other
#: down several times over (OpenMP workers spin-wait for a core the other process holds), while
#: one thread per call loses little alone on inputs of this size.
SINGLE_THREAD_MAX_PIXELS = 1_100_000


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(num_threads)`` and restore the previous count after
    (``None``: leave it). The count is process-wide while the body runs."""
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchRunner:
    """Runs a PyTorch module on ``device`` under ``torch.inference_mode``.

    Args:
        module: the network (eval mode, already on ``device``).
        device: where the batch is moved before the call.
        channels_last: run in channels-last memory layout (``module`` must have been converted).
        num_threads: torch CPU threads for each call (set for the call, then restored). ``None``:
            one thread for inputs of at most :data:`SINGLE_THREAD_MAX_PIXELS` pixels, the process's
            count above (CPU only).
    """

    name = "torch"

    def __init__(self, module: nn.Module, device: torch.device, *, channels_last: bool = False,
                 num_threads: int | None = None) -> None:
        self.module = module
        self.device = device
        self.channels_last = channels_last
        self.num_threads = num_threads
        self.batch_spec = BatchSpec(device=device, channels_last=channels_last)

    def threads_for(self, batch: torch.Tensor) -> int | None:
        """The torch thread count a call on ``batch`` (``[B, 3, H, W]``) runs with (``None``: unchanged)."""
        if self.device.type != "cpu":
            return None
        if self.num_threads is not None:
            return self.num_threads
        pixels = batch.shape[0] * batch.shape[-2] * batch.shape[-1]
        return 1 if pixels <= SINGLE_THREAD_MAX_PIXELS else None

    def __call__(self, batch: torch.Tensor) -> RawOutputs:
        with torch.inference_mode(), torch_threads(self.threads_for(batch)):
            x = batch.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.module(x)
