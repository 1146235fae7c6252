"""pytest plugin: every Python and shell code block of ``README.md`` and ``docs/*.md`` runs as a test.

The tool is `pytest-markdown-docs <https://github.com/modal-labs/pytest-markdown-docs>`_ (the ``dev``
extra installs it; ``pyproject.toml`` turns it on with ``--markdown-docs`` and lists ``README.md`` and
``docs`` in ``testpaths``, so the README's test command ``python -m pytest -q`` runs the blocks). Why
this tool, of the three candidates:

* pytest-markdown-docs (Modal Labs; 0.9.2, March 2026) is maintained and is a pytest plugin: each
  block is one test item with the Markdown file and line in its id, failures show the block with line
  numbers, pytest fixtures and ``-k`` work, and it has a documented skip mechanism (the ``notest``
  word on the fence line), block chaining (``continuation``) and two documented hooks
  (``pytest_markdown_docs_markdown_it``, ``pytest_markdown_docs_globals``) that this module uses.
  It works with the installed pytest 9.
* mktestdocs (0.2.5, July 2025) is maintained but is a helper called from a test function: one test
  per file (or hand-written parametrisation), no skip mechanism for a single block, no line numbers.
* phmdoctest (1.4.0, March 2022) has had no release for years and generates test files in a separate
  step before pytest runs.

pytest-markdown-docs runs ```` ```python ```` blocks only. Shell blocks (```` ```console ````,
```` ```bash ````, ```` ```sh ````, ```` ```shell ````) are handed to it through its parser hook: the
fence becomes a Python block that calls :func:`run_shell_block` on the original text (the ``notest``
word keeps working). In a ``console`` block the commands are the lines that start with ``$ ``
(``\\`` continues a command on the next line) and the other lines are example output, not checked; in
a ``bash``/``sh``/``shell`` block every line is a command. Each command runs in ``bash`` with
``set -euo pipefail`` and must exit with status 0. ``pip install ...`` commands are not run: the
tests run in the environment that ``.ci/run`` installed (``pip install -e ".[dev]"``); a block of
install commands only is reported as skipped.

Where blocks run: every Markdown file gets its own scratch folder, shared by its blocks in order
(a ``continuation`` block sees the files the blocks before it wrote). It looks like a checkout:
``examples/``, ``src/``, ``configs/``, ``benchmarks/`` and ``docs/`` are links to this repository's
folders, so ``examples/images/astronaut.png`` (the shipped image) resolves, and ``../shared`` is a
link to ``$FEATHERFACE_SHARED`` when that is set. Outputs (``out/``, ``faces.jsonl``, ONNX files) land
in the scratch folder. ``FEATHERFACE_CACHE`` points to a scratch folder of the session (ONNX graph
cache, locally installed weights) and ``HF_HUB_OFFLINE=1`` keeps the Hugging Face client offline.

A block that needs what the repository cannot ship (WIDER FACE, the authors' v1 weights, a GPU, a
camera, the Hub, a network) carries ``notest`` on its fence and says next to it where that comes from.
Blocks of the pages other engineers own that cannot run here are listed in :data:`KNOWN_FAILURES`
(strict ``xfail``: once a block is fixed or marked ``notest``, its entry must go).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

SHELL_LANGUAGES: frozenset[str] = frozenset({"console", "bash", "sh", "shell"})
"""Fence languages run by :func:`run_shell_block`."""

SHELL_CALL = "__featherface_run_shell_block__"
"""Name of :func:`run_shell_block` in the namespace of a rewritten shell block."""

CHECKOUT_LINKS: tuple[str, ...] = ("examples", "src", "configs", "benchmarks", "docs")
"""Folders of the repository linked into each scratch folder."""

COMMAND_TIMEOUT_S = 300
"""Longest a single shell command of a block may run."""

_INSTALL = re.compile(r"^(?:python3?\s+-m\s+)?pip3?\s+install\b")

KNOWN_FAILURES: dict[tuple[str, str], str] = {}
"""Blocks of docs/evaluation.md and docs/training.md (owned by other engineers) that cannot run in
the tests as written: ``(page, start of its first command) -> why``. Strict ``xfail``."""


# -- shell blocks ---------------------------------------------------------------------------------


def shell_commands(text: str, language: str) -> list[str]:
    """The commands of a shell block, in order (continuation lines joined, comments dropped)."""
    commands: list[str] = []
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if current is not None:  # the previous line ended with a backslash
            current.append(line.strip())
        elif language == "console":
            if not line.startswith("$ "):
                continue  # example output
            current = [line[2:].strip()]
        else:
            if not line.strip():
                continue
            current = [line.strip()]
        if current[-1].endswith("\\"):
            current[-1] = current[-1][:-1].rstrip()
            continue
        command = " ".join(part for part in current if part)
        current = None
        if command and not command.startswith("#"):
            commands.append(command)
    if current is not None:
        raise ValueError(f"the last command of the block ends with a backslash: {' '.join(current)!r}")
    return commands


def is_install_command(command: str) -> bool:
    """``pip install ...`` (the tests run in the environment ``.ci/run`` installed)."""
    return bool(_INSTALL.match(command))


def _shell_env() -> dict[str, str]:
    """The environment of shell commands: this interpreter's ``bin`` first on ``PATH``, so
    ``featherface`` and ``python`` are the ones of the environment under test."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_shell_block(text: str, language: str) -> None:
    """Run the commands of a shell block in the current folder; fail on the first non-zero exit."""
    commands = shell_commands(text, language)
    runnable = [c for c in commands if not is_install_command(c)]
    if not runnable:
        pytest.skip("install commands only: .ci/run installs the project (pip install -e \".[dev]\")")
    env = _shell_env()
    for i, command in enumerate(runnable, 1):
        proc = subprocess.run(["bash", "-c", f"set -euo pipefail\n{command}"], capture_output=True, text=True,
                              env=env, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise AssertionError(
                f"command {i} of {len(runnable)} exited with status {proc.returncode}: {command}\n"
                f"--- stdout (end) ---\n{proc.stdout[-3000:]}\n--- stderr (end) ---\n{proc.stderr[-3000:]}"
            )


def _rewrite_shell_fences(state: Any) -> None:
    """markdown-it core rule: a shell fence becomes a Python fence that calls :func:`run_shell_block`."""
    for token in state.tokens:
        if token.type != "fence":
            continue
        words = token.info.split()
        if not words or words[0] not in SHELL_LANGUAGES:
            continue
        token.info = " ".join(["python", *words[1:]])
        token.content = f"{SHELL_CALL}({token.content!r}, {words[0]!r})\n"


@pytest.hookimpl(tryfirst=True)
def pytest_markdown_docs_markdown_it() -> Any:
    """pytest-markdown-docs hook: the CommonMark parser plus :func:`_rewrite_shell_fences`."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt(config="commonmark")
    parser.core.ruler.push("featherface_shell_fences", _rewrite_shell_fences)
    return parser


def pytest_markdown_docs_globals() -> dict[str, Any]:
    """pytest-markdown-docs hook: names every block sees."""
    return {SHELL_CALL: run_shell_block}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Do not collect ``docs/*.py``: they are scripts (``gen_docs.py``, ...), not tests, and
    ``--markdown-docs`` would import every ``.py`` file it is given to look for docstring blocks."""
    if collection_path.suffix == ".py" and collection_path.parent == ROOT / "docs":
        return True
    return None


# -- where blocks run -----------------------------------------------------------------------------


def is_doc_page_item(item: pytest.Item) -> bool:
    """A block of README.md or docs/*.md (not a docstring block of a .py file)."""
    return item.get_closest_marker("markdown-docs") is not None and item.path.suffix == ".md"


def _scratch_checkout(base: Path) -> Path:
    work = base / "checkout"
    work.mkdir(parents=True)
    for name in CHECKOUT_LINKS:
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name, target_is_directory=True)
    shared = os.environ.get("FEATHERFACE_SHARED")
    if shared and Path(shared).is_dir():
        (base / "shared").symlink_to(Path(shared).resolve(), target_is_directory=True)
    return work


@pytest.fixture(scope="session")
def _doc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``FEATHERFACE_CACHE`` of the blocks: ONNX graphs and installed weights, shared by all pages."""
    return tmp_path_factory.mktemp("featherface-cache")


@pytest.fixture(scope="session")
def _doc_workdirs() -> dict[Path, Path]:
    """Markdown page -> its scratch checkout (made on the page's first block)."""
    return {}


@pytest.fixture(autouse=True)
def _doc_page_workdir(request: pytest.FixtureRequest) -> Iterator[None]:
    """For blocks of Markdown pages: run in the page's scratch checkout, offline, with a scratch cache,
    and restore torch's thread count afterwards."""
    if not is_doc_page_item(request.node):
        yield
        return
    workdirs: dict[Path, Path] = request.getfixturevalue("_doc_workdirs")
    page = Path(request.node.path)
    if page not in workdirs:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        workdirs[page] = _scratch_checkout(factory.mktemp(f"doc-{page.stem}"))
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.chdir(workdirs[page])
    monkeypatch.setenv("FEATHERFACE_CACHE", str(request.getfixturevalue("_doc_cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # a block's num_threads=N is process-wide: do not let it leak


def _first_command(item: pytest.Item) -> str:
    """The first command of a shell block item ('' for a Python block)."""
    source: str = getattr(item, "code", "")
    match = re.search(rf"{SHELL_CALL}\((.*), '(\w+)'\)\s*$", source, flags=re.S)
    if not match:
        return ""
    import ast

    commands = shell_commands(ast.literal_eval(match.group(1)), match.group(2))
    return commands[0] if commands else ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the blocks of :data:`KNOWN_FAILURES` as strict ``xfail``, and shell blocks as ``slow`` (each
    starts Python processes: the fast lane ``-m "not slow"`` runs the Python blocks only)."""
    for item in items:
        if not is_doc_page_item(item):
            continue
        page = Path(item.path).resolve().relative_to(ROOT).as_posix()
        first = _first_command(item)
        if first:
            item.add_marker(pytest.mark.slow)
        for (known_page, start), reason in KNOWN_FAILURES.items():
            if page == known_page and first.startswith(start):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
