"""``FEATHERFACE_SHARED`` resolution of the tests (tests/conftest.py): a relative value such as the
README's ``FEATHERFACE_SHARED=../shared`` is taken relative to where pytest was started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import resolve_shared, shared_dir


def test_relative_value_is_resolved_against_the_start_directory(tmp_path: Path) -> None:
    start = tmp_path / "checkout"
    assert resolve_shared("../shared", start) == tmp_path / "shared"
    assert resolve_shared("data", start) == start / "data"
    assert resolve_shared("./a/../b", start) == start / "b"


def test_absolute_unset_and_home_values(tmp_path: Path) -> None:
    assert resolve_shared(str(tmp_path / "s"), "/elsewhere") == tmp_path / "s"
    assert resolve_shared(None, tmp_path) is None
    assert resolve_shared("", tmp_path) is None
    assert resolve_shared("~/x", tmp_path) == Path.home() / "x"


def test_the_environment_holds_an_absolute_path_for_subprocesses(tmp_path: Path, monkeypatch) -> None:
    """After pytest_configure the variable is absolute, so a subprocess in another folder (torchrun in
    tmp_path) and a chdir in this process both see the same folder."""
    value = os.environ.get("FEATHERFACE_SHARED")
    if value:
        assert Path(value).is_absolute(), value
    monkeypatch.chdir(tmp_path)
    assert shared_dir() == (Path(value) if value else None)
    code = "import os; print(os.environ.get('FEATHERFACE_SHARED', ''))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert out == (value or "")


def test_pytest_started_with_a_relative_value_resolves_it(tmp_path: Path) -> None:
    """A child pytest run from a folder with FEATHERFACE_SHARED=../shared sees the absolute folder in
    a test that chdirs elsewhere first."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "shared").mkdir()
    work = tmp_path / "work"
    (work / "tests").mkdir(parents=True)
    (work / "tests" / "__init__.py").write_text("")
    (work / "tests" / "conftest.py").write_text((root / "tests" / "conftest.py").read_text())
    (work / "tests" / "test_x.py").write_text(
        "import os\nfrom pathlib import Path\n"
        "def test_x(shared, tmp_path, monkeypatch):\n"
        "    monkeypatch.chdir(tmp_path)\n"
        f"    assert shared == Path({str(tmp_path / 'shared')!r})\n"
        f"    assert os.environ['FEATHERFACE_SHARED'] == {str(tmp_path / 'shared')!r}\n"
    )
    env = {**os.environ, "FEATHERFACE_SHARED": "../shared"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "tests/test_x.py"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
