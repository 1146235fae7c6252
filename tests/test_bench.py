"""Smoke test of ``featherface bench``: report structure and Markdown table (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from featherface import cli


def test_bench_smoke(tmp_path: Path, capsys):
    json_out, md_out = tmp_path / "bench.json", tmp_path / "bench.md"
    code = cli.main(["bench", "--models", "v2_ultra", "--backends", "torch", "--sizes", "64x48", "--threads", "1",
                     "--runs", "2", "--warmup", "1", "--json-out", str(json_out), "--md-out", str(md_out)])
    assert code == cli.EXIT_OK, capsys.readouterr().err
    report = json.loads(json_out.read_text())
    assert {"machine", "settings", "results", "command"} <= set(report)
    for key in ("cpu", "logical_cores", "torch", "onnxruntime", "opencv"):
        assert key in report["machine"]
    assert report["settings"]["runs"] == 2 and report["settings"]["warmup"] == 1
    [row] = report["results"]
    assert "error" not in row, row
    assert (row["model"], row["backend"], row["size"], row["threads"]) == ("v2_ultra", "torch", "64x48", 1)
    assert (row["width"], row["height"], row["torch_threads"]) == (64, 48, 1)
    assert isinstance(row["detections"], int) and row["detections"] >= 0
    for stage in ("preprocess", "network", "postprocess", "total"):
        stats = row["latency_ms"][stage]
        assert 0 <= stats["p50"] <= stats["p90"]
    assert row["peak_rss_mb"] > 0
    md = md_out.read_text()
    assert "| model | backend | size (WxH) | threads |" in md
    assert "| v2_ultra | torch | 64x48 | 1 |" in md
    assert "Machine:" in md and report["machine"]["torch"] in md
    assert md in capsys.readouterr().out


def test_bench_rejects_bad_values(capsys):
    assert cli.main(["bench", "--models", "nope", "--runs", "1"]) == cli.EXIT_USAGE
    assert "unknown model" in capsys.readouterr().err
    assert cli.main(["bench", "--sizes", "640"]) == cli.EXIT_USAGE
    assert cli.main(["bench", "--runs", "0"]) == cli.EXIT_USAGE


def test_bench_explicit_weights(tmp_path: Path, capsys):
    """``--weights NAME=PATH`` runs those weights (here a saved v1 network) in the timed workers."""
    import torch

    import featherface
    from featherface import save_weights_folder
    from featherface._weights.registry import get_config

    torch.manual_seed(5)
    folder = tmp_path / "v1w"
    save_weights_folder(featherface.build_model("v1"), get_config("v1"), folder)
    json_out = tmp_path / "bench.json"
    code = cli.main(["bench", "--models", "v1", "--backends", "torch", "--sizes", "48x40", "--threads", "1",
                     "--runs", "1", "--warmup", "0", "--weights", f"v1={folder}", "--json-out", str(json_out)])
    assert code == cli.EXIT_OK, capsys.readouterr().err
    report = json.loads(json_out.read_text())
    [row] = report["results"]
    assert row["weights"] != "random" and f"--weights v1={folder}" in report["command"]
    assert cli.main(["bench", "--models", "v1", "--weights", "v2_ultra=x"]) == cli.EXIT_USAGE
    assert cli.main(["bench", "--models", "v1", "--weights", f"v1={tmp_path / 'missing'}"]) == cli.EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
