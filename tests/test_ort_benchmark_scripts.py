"""Smoke tests of benchmarks/profile_onnxruntime.py and benchmarks/onnxruntime_variants.py (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime comes with the onnx extra")

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_profile_script_reports_operator_and_module_tables(tmp_path: Path) -> None:
    out = _run("profile_onnxruntime.py", "--size", "96x64", "--threads", "1", "--runs", "2", "--warmup", "1",
               "--json-out", str(tmp_path / "p.json"))
    assert "| operator |" in out and "| module |" in out and "| Conv |" in out
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["by_operator_us"]["Conv"] > 0 and report["network_ms_unprofiled"] > 0


@pytest.mark.slow
def test_variants_script_times_each_variant() -> None:
    out = _run("onnxruntime_variants.py", "--size", "96x64", "--threads", "1", "--runs", "2", "--warmup", "1",
               "--variants", "backend", "opset17", "fixed-shape")
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "variant" not in line]
    assert rows == ["backend", "opset17", "fixed-shape"]
    assert "| backend |" in out and "1.00x" in out
