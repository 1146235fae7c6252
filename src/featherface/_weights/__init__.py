"""Weights: the registry of model facts, where weights come from and how they are read and written.

The entry point is :func:`load_network` (a model name or a weights path -> network, config and
provenance). Inside:

- :mod:`~featherface._weights.registry`: the table of registered models (configs, published or
  installable weights, install hints);
- :mod:`~featherface._weights.resolve`: the resolution policy (explicit path, Hub, packaged copy, local store);
- :mod:`~featherface._weights.hub`: the Hugging Face Hub transport;
- :mod:`~featherface._weights.store`: the local store of installed weights;
- :mod:`~featherface._weights.files`: the weights folder format and state-dict I/O;
- :mod:`~featherface._weights.convert`: the converter of the FeatherFace authors' V1 weights.
"""

from __future__ import annotations

from featherface._weights.loader import LoadedNetwork, load_network

__all__ = ["LoadedNetwork", "load_network"]
