"""The user docs do not go stale: generated pages, CLI options, option defaults and links, and every
code block runs.

The code blocks of README.md and docs/*.md are run by pytest-markdown-docs, one test per block,
with the shell blocks routed through :mod:`tests.doc_blocks` (see its docstring for the rules).
Picked over mktestdocs and phmdoctest because it is maintained (0.9.2, 2026), is a pytest plugin
that runs under the README's plain ``python -m pytest -q`` (``--markdown-docs`` is in ``addopts``),
names each failing block by file and line, and has a documented skip mechanism (``notest`` on the
fence), block chaining (``continuation``) and hooks for the parser and globals; mktestdocs is a helper
without per-block skips or line numbers, and phmdoctest (last release 2022) generates test files in a
separate step. The tests below check the harness itself and what a block run cannot see.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

import featherface
from featherface import cli
from tests import doc_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
OTHERS_PAGES = {"models.md", "evaluation.md", "training.md"}
"""Pages maintained by other engineers: run by the harness, not checked for wording here."""


def load_gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("featherface_gen_docs", DOCS / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_up_to_date(capsys):
    code = load_gen_docs().main(["--check"])
    err = capsys.readouterr().err
    assert code == 0, f"docs are stale; run 'python docs/gen_docs.py' and commit:\n{err}"


def test_api_page_covers_every_public_name():
    text = (DOCS / "api.md").read_text()
    for name in featherface.__all__:
        if name != "__version__":
            assert f"## {name}\n" in text, name


def test_docstring_rendering():
    gen = load_gen_docs()
    md = gen.docstring_to_markdown(
        "Do it.\n\nArgs:\n    x: the ``x`` value, see :class:`Foo`\n        continued.\n\n"
        "Returns:\n    The result.\n\n>>> f(1)  # doctest: +SKIP\n"
    )
    assert "**Args**\n\n- `x`: the `x` value, see `Foo` continued." in md
    assert "**Returns**\n\nThe result." in md
    assert "```pycon\n>>> f(1)\n```" in md  # an interpreter session, not a block the docs tests run


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")}


def test_cli_page_documents_every_option():
    text = (DOCS / "cli.md").read_text()
    parser = cli.build_parser([])
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    core = (n for m, ns in cli.COMMAND_MODULES.items() if m.startswith("featherface.cli.") for n in ns)
    for name in core:  # the core commands (others are documented with their own guides)
        assert f"## featherface {name}" in text, name
        for option in _options(subparsers.choices[name]) - {"--help", "--verbose"}:
            assert f"`{option}" in text, f"featherface {name} {option} is not documented in docs/cli.md"
    for option in _options(parser) - {"--help"}:
        assert f"`{option}" in text, option


def test_concepts_options_table_matches_detector_options():
    text = (DOCS / "concepts.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", text, flags=re.M))
    fields = {f.name: f.default for f in dataclasses.fields(featherface.DetectorOptions)}
    assert set(rows) == set(fields)
    for name, default in fields.items():
        assert rows[name] == repr(default), name


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_resolve(page):
    text = (DOCS / page).read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (DOCS / path) if path else DOCS / page
        assert file.exists(), f"{page}: broken link {target}"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, f"{page}: no heading for #{anchor} in {file.name}"


# -- the code-block harness (tests/doc_blocks.py) ---------------------------------------------------


def fences(page: Path) -> list[tuple[str, list[str], str, int]]:
    """``(language, options, content, first line)`` of every fenced block of a page."""
    from markdown_it import MarkdownIt

    out = []
    for token in MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8")):
        if token.type == "fence" and token.map:
            words = token.info.split()
            out.append((words[0] if words else "", words[1:], token.content, token.map[0] + 1))
    return out


def test_shell_block_parsing():
    console = (
        "$ featherface models        # a comment\n"
        "name  params\n"
        "$ featherface detect a.png \\\n"
        "    --json > out.jsonl\n"
        "$ # copy the folder\n"
        "$ pip install \".[onnx]\"\n"
    )
    assert doc_blocks.shell_commands(console, "console") == [
        "featherface models        # a comment", "featherface detect a.png --json > out.jsonl", 'pip install ".[onnx]"']
    assert doc_blocks.shell_commands("pip install .\nfeatherface detect x.png\n\n", "bash") == [
        "pip install .", "featherface detect x.png"]
    assert doc_blocks.is_install_command('pip install -e ".[dev]"') and doc_blocks.is_install_command(
        "python -m pip install torch")
    assert not doc_blocks.is_install_command("featherface detect pip.png")
    with pytest.raises(ValueError, match="backslash"):
        doc_blocks.shell_commands("$ featherface detect \\\n", "console")


def test_shell_fences_become_python_calls_and_keep_notest():
    parser = doc_blocks.pytest_markdown_docs_markdown_it()
    tokens = parser.parse("```console notest\n$ featherface models\n```\n\n```bash\nfeatherface models\n```\n")
    infos = [(t.info, t.content) for t in tokens if t.type == "fence"]
    assert infos[0][0] == "python notest" and infos[1][0] == "python"
    assert infos[1][1] == f"{doc_blocks.SHELL_CALL}('featherface models\\n', 'bash')\n"


def test_a_failing_shell_command_fails_the_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc_blocks.run_shell_block("$ featherface --version\n", "console")
    with pytest.raises(AssertionError, match="command 2 of 2 exited with status 2: featherface detect nothing.png"):
        doc_blocks.run_shell_block("$ featherface --version\n$ featherface detect nothing.png\n", "console")


@pytest.mark.parametrize("page", [p for p in PAGES if p.name not in OTHERS_PAGES and p.name != "api.md"],
                         ids=lambda p: p.name)
def test_every_skipped_block_says_why_next_to_it(page):
    """A ``notest`` block is followed (or preceded) by a sentence saying why the docs tests skip it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    for _language, options, content, line in fences(page):
        if "notest" not in options:
            continue
        end = line + content.count("\n") + 1
        around = " ".join(lines[max(0, line - 8):end + 8]).lower()
        assert "docs tests" in around, f"{page.name}:{line}: a notest block without its reason next to it"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_runnable_blocks_use_shipped_files_not_placeholders(page):
    """No runnable block refers to files a checkout does not have (``photo.jpg``, ``my-weights/``...)."""
    for language, options, content, line in fences(page):
        if language in ("python", *doc_blocks.SHELL_LANGUAGES) and "notest" not in options:
            for placeholder in ("photo.jpg", "path/to/weights", "my-weights/", "photos/", "group.jpg"):
                assert placeholder not in content, f"{page.name}:{line}: {placeholder!r} is not in the repository"


def python_blocks(page: Path) -> list[str]:
    return [c for lang, opts, c, _ in fences(page) if lang == "python" and "notest" not in opts]


def test_quickstart_pasted_top_to_bottom_detects_with_the_trained_weights(tmp_path, monkeypatch):
    """Pasting every Python block of the quickstart in order keeps the packaged detector and finds the face."""
    monkeypatch.chdir(doc_blocks._scratch_checkout(tmp_path))
    monkeypatch.setenv("FEATHERFACE_CACHE", str(tmp_path / "cache"))
    namespace: dict = {"__name__": "__main__"}
    for block in python_blocks(DOCS / "quickstart.md"):
        exec(compile(block, "docs/quickstart.md", "exec"), namespace)
    assert namespace["detector"].weights_source == "packaged"
    assert namespace["batch"][0], "the quickstart's detector found no face in the astronaut photo"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "api.md"], ids=lambda p: p.name)
def test_pages_that_load_v1_say_it_needs_convert_reference(page):
    text = page.read_text(encoding="utf-8")
    if re.search(r'load_model\("v1"|--model v1|or "v1"', text):
        assert "convert-reference" in text, f"{page.name} loads v1 without saying to run featherface convert-reference"


def test_readme_gives_the_cpu_only_install_with_measured_sizes():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"\| `pip install \.` \(default.*\| [\d.]+ GB \|", text)
    assert re.search(r"\| CPU-only torch first.*\| [\d.]+ GB \|", text)
    assert "du -sh" in text  # how the sizes were measured


def test_readme_output_folder_is_git_ignored():
    import shutil
    import subprocess

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    save_dir = re.search(r"featherface detect examples/images/astronaut.png --save-dir (\S+)", text).group(1)
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "check-ignore", "-q", f"{save_dir.rstrip('/')}/astronaut.jpg"], cwd=ROOT)
    assert proc.returncode == 0, f"{save_dir} (the README's output folder) is not git-ignored"
