"""The exceptions a caller of featherface may want to catch, in one place.

Every error the library raises on purpose is one of these or a built-in (``TypeError`` for a value of
the wrong type, ``ValueError`` for a value out of range, ``FileNotFoundError``, ``ImportError`` for a
missing optional extra, whose message names the ``pip install`` command). Each class below subclasses
the built-in that describes it best, so ``except ValueError`` keeps working. All of them are also
importable from the top level: ``featherface.WeightsError``, ...

This module imports nothing, so any other module may import it.
"""

from __future__ import annotations

__all__ = [
    "ImageError",
    "DeviceError",
    "UnknownModelError",
    "WeightsError",
    "WeightsIntegrityError",
    "ConfigMismatchError",
    "WeightsNotInstalledError",
    "ConversionError",
]


class ImageError(ValueError):
    """An input could not be turned into an image; the message names the problem."""


class DeviceError(ValueError):
    """A device name that is invalid, or a device that this machine does not have."""


class UnknownModelError(ValueError):
    """A model name that is not registered; the message lists the registered names."""


class WeightsError(RuntimeError):
    """Weights could not be found or loaded (the message says which file and why)."""


class WeightsIntegrityError(WeightsError):
    """A weights file does not have the registered sha256 (corrupt or tampered)."""


class ConfigMismatchError(WeightsError):
    """A ``config.json`` next to the weights does not describe the registered architecture."""


class WeightsNotInstalledError(WeightsError):
    """A model without published weights (e.g. ``v1``) has not been installed in the local store."""


class ConversionError(ValueError):
    """A source state dict does not map cleanly onto the target network (``featherface convert-reference``)."""
