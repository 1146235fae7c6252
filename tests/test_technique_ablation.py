"""benchmarks/technique_ablation.py: its task sharding and the summary over seeds (no training here)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "technique_ablation.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("technique_ablation", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BASE = {"smart_feature_reuse": True, "attention_multiplication": False, "progressive_enhancement": True,
        "multi_scale_intelligence": True, "dynamic_weight_sharing": True}


def test_variants_flip_one_technique_each_then_all_off() -> None:
    ta = _module()
    vs = ta.variants(BASE)
    assert [v for v, _ in vs][0] == "registry default" and vs[0][1] == BASE
    assert vs[-1] == ("all five off", dict.fromkeys(BASE, False))
    for label, techs in vs[1:-1]:
        changed = [k for k in BASE if techs[k] != BASE[k]]
        assert len(changed) == 1 and label.startswith(changed[0])
    assert "attention_multiplication on" in [v for v, _ in vs]


def test_shards_cover_every_task_once() -> None:
    ta = _module()
    every = ta.tasks(BASE, [1, 2, 3], (0, 1))
    assert len(every) == 21 and [t[2] for t in every[:7]] == [1] * 7  # seed-major
    shards = [ta.tasks(BASE, [1, 2, 3], (i, 2)) for i in range(2)]
    assert sorted(map(repr, shards[0] + shards[1])) == sorted(map(repr, every))
    with pytest.raises(Exception, match="I/N"):
        ta._shard("2/2")


def _run(variant: str, seed: int, large: float, medium: float, all_: float) -> dict:
    return {"variant": variant, "seed": seed, "techniques": BASE, "ort_ms_640x480": 20.0,
            "dev": {"dev": {"large": large, "medium": medium, "all": all_}}}


def test_summary_means_spreads_and_paired_differences() -> None:
    ta = _module()
    runs = [_run("all five off", 1, 30, 30, 30), _run("registry default", 1, 20, 20, 20),
            _run("registry default", 2, 24, 20, 16), _run("all five off", 2, 27, 27, 27),
            _run("smart_feature_reuse off", 1, 10, 10, 10)]
    rows = ta.summarize(runs)
    assert [r["variant"] for r in rows] == ["registry default", "smart_feature_reuse off", "all five off"]
    ref, solo, off = rows
    assert ref["large"] == 22 and ref["large_sd"] == pytest.approx(math.sqrt(8))
    assert ref["mean"] == 20 and ref["mean_sd"] == 0
    assert off["diff_to_reference"] == [10.0, 7.0] and off["seeds"] == [1, 2]
    assert solo["diff_to_reference"] == [-10.0] and math.isnan(solo["mean_sd"])
