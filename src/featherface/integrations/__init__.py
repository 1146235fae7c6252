"""Integrations with other frameworks; each submodule imports its framework only when used.

* :mod:`featherface.integrations.ray`: :class:`~featherface.integrations.ray.RayFaceDetector` for
  ``ray.data.Dataset.map_batches`` (``pip install "featherface[ray]"``).
"""

__all__: list[str] = []  # a package of submodules: import them by name
