"""featherface: lightweight face detection (FeatherFace V1 and V2 Ultra)."""

from featherface._version import __version__

__all__ = ["__version__"]
