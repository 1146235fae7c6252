"""The import contracts of ``[tool.importlinter]`` in pyproject.toml hold (import-linter, ``lint-imports``).

The contracts: the layers of the package, low to high (errors; detection types, options, io, cache;
ops; models; weights; engines; pipeline; ...; cli; train), nothing outside ``featherface.train``
imports it, and no import cycle between the subpackages. A second run with one contract made stricter
checks that the tool does report a broken contract (so the first run can fail).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the stdlib parser arrived in 3.11
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]


def _lint(config: Path | None = None) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("importlinter")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    script = Path(sys.executable).with_name("lint-imports")  # installed with import-linter (dev extra)
    args = [str(script) if script.exists() else "lint-imports", "--no-cache"]
    if config is not None:
        args += ["--config", str(config)]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_the_import_contracts_hold() -> None:
    proc = _lint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_a_broken_layer_is_reported(tmp_path: Path) -> None:
    """Swap two layers (ops above models): the models import the ops, so the contract must break."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        settings = tomllib.load(f)["tool"]["importlinter"]
    layers = settings["contracts"][0]["layers"]
    i, j = layers.index("featherface._models"), layers.index("featherface._ops")
    layers[i], layers[j] = layers[j], layers[i]
    lines = [f"[importlinter]\nroot_package = {settings['root_package']}\n"
             "exclude_type_checking_imports = True\n",
             "[importlinter:contract:layers]\nname = swapped\ntype = layers\nlayers =\n"
             + "".join(f"    {layer}\n" for layer in layers)]
    config = tmp_path / "swapped.ini"
    config.write_text("\n".join(lines), encoding="utf-8")
    proc = _lint(config)
    assert proc.returncode != 0, proc.stdout
    assert "featherface._models" in proc.stdout and "featherface._ops" in proc.stdout


def test_import_floors_stay_at_nine_or_fewer() -> None:
    """benchmarks/import_floors.py: the longest import chain between top-level components (12 before the
    package-per-concern layout, 9 after: __main__ -> cli -> _bench -> _api -> _stream -> pipeline ->
    _engines -> _models -> _ops)."""
    pytest.importorskip("grimp")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from import_floors import import_floors
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    result = import_floors(ROOT / "src")
    assert result["cycles"] == []
    assert result["floors"] <= 9, result["chain"]
