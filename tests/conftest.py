"""Shared fixtures. Data from ``../shared`` is located through ``FEATHERFACE_SHARED``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def resolve_shared(value: str | None, base: str | os.PathLike[str]) -> Path | None:
    """``FEATHERFACE_SHARED`` as an absolute path: a relative value (``../shared``, as the README's test
    command passes it) is taken relative to ``base``, the directory pytest was started from, so that
    tests that change directory or start subprocesses elsewhere (torchrun in a temporary folder) see
    the same folder. ``None`` for an unset or empty value."""
    if not value:
        return None
    path = Path(value).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else Path(base) / path))


def pytest_configure(config: pytest.Config) -> None:
    """Resolve ``FEATHERFACE_SHARED`` once, before any test changes directory or starts a subprocess:
    the environment variable itself is rewritten as an absolute path, which subprocesses inherit."""
    root = resolve_shared(os.environ.get("FEATHERFACE_SHARED"), config.invocation_params.dir)
    if root is not None:
        os.environ["FEATHERFACE_SHARED"] = str(root)


def shared_dir() -> Path | None:
    """The shared data folder (absolute; see :func:`resolve_shared`), or None when unset."""
    return resolve_shared(os.environ.get("FEATHERFACE_SHARED"), Path.cwd())


@pytest.fixture(scope="session")
def shared() -> Path:
    """Root of the shared data folder; skip (visibly) when FEATHERFACE_SHARED is unset.

    When the variable is set, a missing file is a failure, not a skip: tests call
    :func:`shared_file` which asserts existence.
    """
    root = shared_dir()
    if root is None:
        pytest.skip("FEATHERFACE_SHARED is not set: tests that need ../shared data are skipped")
    assert root.is_dir(), f"FEATHERFACE_SHARED={root} is not a directory"
    return root


def shared_file(root: Path, rel: str) -> Path:
    path = root / rel
    assert path.exists(), f"FEATHERFACE_SHARED is set but {path} is missing"
    return path


@pytest.fixture(autouse=True, scope="session")
def _isolated_featherface_cache(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Every test sees an empty featherface cache (installed v1 weights, ONNX exports) of its own
    session, never the user's: e.g. the 'v1 is not installed' tests must not depend on the machine."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEATHERFACE_CACHE", str(tmp_path_factory.mktemp("featherface_cache")))
    yield
    mp.undo()
