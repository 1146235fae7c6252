"""docs/training_log.py: the model card's dev rows are derived from the committed training log."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("featherface_training_log", ROOT / "docs" / "training_log.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rec(stage: str, step: int | None, large: float, medium: float, all_: float) -> dict:
    return {"stage": stage, "step": step, "crops_total": 16 * (step or 0), "weights_sha256": "ab" * 32,
            "dev": {"dev": {"large": large, "medium": medium, "all": all_}}}


def test_candidates_keep_best_and_last_of_each_run() -> None:
    tl = _module()
    recs = [_rec("start", None, 50, 40, 30), _rec("a", 100, 60, 50, 40), _rec("a", 200, 55, 45, 35),
            _rec("a", 300, 52, 44, 33), _rec("b", 100, 61, 51, 41), _rec("late", 100, 90, 90, 90)]
    rows = tl.candidates(recs, {"stage": "b", "step": 100}, {"late"})
    assert [r["candidate"] for r in rows] == [
        f"start (the weights packaged before, sha256 {'ab' * 4}…)", "a step 100", "a step 300", "b step 100"]
    assert [r["shipped"] for r in rows] == [False, False, False, True]
    assert rows[1] == {"candidate": "a step 100", "crops": 1600, "large": 60, "medium": 50, "all": 40, "shipped": False}


def test_packaged_card_rows_come_from_the_committed_log() -> None:
    # the card of the packaged v2_ultra lists the runs scored before its choice; s9, s8r, s10 and s11 ran after
    tl = _module()
    card = json.loads((ROOT / "configs" / "cpu" / "v2_ultra_s8_card.json").read_text(encoding="utf-8"))
    rows = tl.candidates(tl.records(), {"stage": "s8_more_photos", "step": 600},
                         {"s9_continue", "s8r_all_people", "s10_unfrozen", "s11_mask_sets"})
    assert rows == card["dev_results"]
