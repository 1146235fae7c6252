"""Smoke test of ``benchmarks/peers.py`` in the project's own environment (no timing assertions).

The peer detectors live in their own environments (``benchmarks/peers/make_env.sh``); here the
script must run the featherface rows, report every peer that does not load as skipped with a
reason, and write its JSON and Markdown reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "peers.py"


@pytest.mark.slow
def test_peers_script_runs_featherface_rows_and_reports_skips(tmp_path: Path) -> None:
    json_out, md_out = tmp_path / "peers.json", tmp_path / "peers.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "2", "--warmup", "1", "--threads", "1", "--size", "320x240",
         "--json-out", str(json_out), "--md-out", str(md_out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(json_out.read_text())
    rows = {r["name"]: r for r in report["results"]}
    assert {"featherface-v2_ultra-onnxruntime", "featherface-v2_ultra-torch"} <= set(rows)
    ort_row = rows["featherface-v2_ultra-onnxruntime"]
    assert ort_row["ratio_p50_vs_featherface_onnxruntime"] == 1.0
    assert len(ort_row["times_ms"][0]) == 2 and ort_row["p50_ms"] > 0
    assert ort_row["faces"] == rows["featherface-v2_ultra-torch"]["faces"]  # same detector, two backends
    assert all(isinstance(why, str) and why for why in report["skipped"].values())
    loaded = set(rows) | set(report["skipped"])
    assert {"haar", "mtcnn", "mediapipe-short", "mediapipe-full"} <= loaded  # each is timed or says why not
    md = md_out.read_text()
    assert "featherface-v2_ultra-onnxruntime" in md and md in proc.stdout
