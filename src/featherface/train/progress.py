"""The progress bar of the training stack: training steps, WIDER FACE predictions, pseudo-labelling.

``tqdm`` comes with the ``train`` extra; without it (or when disabled) there is no bar and callers
skip their updates.
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, *, unit: str, enabled: bool = True, initial: int = 0) -> Any | None:
    """A ``tqdm`` bar of ``total`` items starting at ``initial`` (redrawn at most every 2 s), or
    ``None`` when ``enabled`` is False or tqdm is not installed. The caller calls ``update`` and
    ``close`` on it."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the train extra
        return None
    return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, mininterval=2.0)
