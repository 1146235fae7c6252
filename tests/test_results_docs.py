"""Every generated table in README.md and docs/ equals its result file in docs/data/, and every result
file that cites v2_ultra weights cites the packaged ones (or declares itself historical).

``python docs/results.py check`` is what runs here; ``python docs/results.py refresh`` fixes a stale
doc (``--render-only``) or re-measures a stale result (after new weights: ``refresh``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _results():
    spec = importlib.util.spec_from_file_location("featherface_docs_results", ROOT / "docs" / "results.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


results = _results()


def test_docs_equal_their_result_files_and_cite_the_packaged_weights() -> None:
    problems = results.check()
    assert not problems, "\n".join(problems)


def test_check_catches_a_changed_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "small_faces"
    res = results.BY_NAME[name]
    rec = json.loads(res.file.read_text())  # read before DATA moves
    rec["data"]["rows"][0]["found"] += 1
    fake = tmp_path / f"{name}.json"
    fake.write_text(json.dumps(rec))
    monkeypatch.setattr(results, "DATA", tmp_path)
    for other in results.RESULTS:  # the other files as committed
        committed = ROOT / "docs" / "data" / other.file.name
        if committed.is_file() and not (tmp_path / other.file.name).exists():
            (tmp_path / other.file.name).write_text(committed.read_text())
    problems = results.check()
    assert any(name in p and "differs" in p for p in problems), problems


def test_check_catches_weights_that_are_not_the_packaged_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for res in results.RESULTS:
        if res.file.is_file():
            (tmp_path / res.file.name).write_text(res.file.read_text())
    rec = json.loads((tmp_path / "speed.json").read_text())
    rec["weights_sha256"]["v2_ultra"] = "0" * 64
    (tmp_path / "speed.json").write_text(json.dumps(rec))
    monkeypatch.setattr(results, "DATA", tmp_path)
    problems = results.check()
    assert any("speed.json" in p and "packaged" in p for p in problems), problems
    rec["weights"] = "historical: some earlier weights"  # declared historical: allowed, if marked so
    rec["historical"] = True
    (tmp_path / "speed.json").write_text(json.dumps(rec))
    assert not any("speed.json" in p and "packaged" in p for p in results.check())


def test_historical_results_are_labelled_in_the_docs() -> None:
    for res in results.RESULTS:
        rec = json.loads(res.file.read_text()) if res.file.is_file() else {}
        if rec.get("historical"):
            assert results.render(res).startswith("*Committed historical measurement"), res.name


def test_no_config_validates_on_widerface_val() -> None:
    """Nothing is chosen on the benchmark: no training config scores WIDER FACE val while training."""
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        text = path.read_text()
        assert "val_widerface" not in text and "val_every_epochs" not in text, path


def test_configs_put_data_and_runs_next_to_the_checkout() -> None:
    """Paths in configs are relative to the config file and resolve next to the checkout."""
    import yaml

    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        dirs = [cfg.get("out_dir")] + [d.get(k) for d in cfg.get("train_data", []) for k in ("labels", "images")]
        for d in dirs:
            if d and not d.startswith("../../src"):
                resolved = (path.parent / d).resolve()
                assert resolved.is_relative_to(ROOT.parent) and not resolved.is_relative_to(ROOT), (path, d)
