"""The device an engine runs on: the one device check of the package."""

from __future__ import annotations

import torch

from featherface.errors import DeviceError

__all__ = ["default_device", "parse_device", "resolve_device"]


def default_device() -> torch.device:
    """CUDA when available, else the CPU (what ``device=None`` means)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, or a :class:`DeviceError` naming the accepted forms (existence not checked)."""
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"invalid device {str(device)!r}: expected 'cpu', 'cuda', 'cuda:N' or 'mps' (device= in "
                          "Python, --device on the command line)") from None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The ``torch.device`` for ``device`` (``None``: :func:`default_device`), checked to exist here.

    The one device check of the package: :func:`featherface.load_model` (through
    :func:`featherface._engines.make_runner`) and the command line's ``--device`` go through it, so they report an unusable device with the same message.

    Raises:
        DeviceError: (a ``ValueError``) an invalid name, or CUDA / MPS requested on a machine (or a
            torch build) without it, or a CUDA index this machine does not have.
    """
    if device is None:
        return default_device()
    dev = parse_device(device)
    fallback = "use device 'cpu' instead (device='cpu' or device=None in Python, --device cpu or no --device on the command line)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else f"torch {torch.__version__} found no usable GPU or driver")
            raise DeviceError(f"device {str(device)!r}: CUDA is not available on this machine ({why}); {fallback}")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"device {str(device)!r}: this machine has {count} CUDA device(s) "
                              f"(cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device {str(device)!r}: MPS (Apple GPU) is not available on this machine; {fallback}")
    return dev
