"""The user docs do not go stale: generated pages, CLI options, option defaults and links."""

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

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


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
    assert "```python\n>>> f(1)\n```" in md


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")}


def test_cli_page_documents_every_option():
    text = (DOCS / "cli.md").read_text()
    parser = cli.build_parser([])
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in cli._SUBCOMMANDS:  # the core commands (others are documented with their own guides)
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
