"""Root conftest: loads the plugin that runs the code blocks of README.md and docs/*.md as tests
(:mod:`tests.doc_blocks`). It lives at the root so that it also applies when only a Markdown file is
collected (``python -m pytest docs/quickstart.md``)."""

pytest_plugins = ("tests.doc_blocks",)
