"""The ``featherface`` command line: ``featherface detect|models|download|convert-reference|export|bench ...``.

Nothing is parsed at import time: :func:`main` builds the parser (:func:`build_parser`) on each call,
and importing this package pulls in neither torch nor OpenCV (commands import what they need).

Commands: one registration style. Every command is added by a ``register(subparsers)`` function,
which adds its sub-parsers with ``subparsers.add_parser(name, help=...)`` and
``set_defaults(func=run)``, where ``run(args) -> int`` returns the exit status. The core commands live
in the modules of :data:`COMMAND_MODULES` (each mapped to the names of its commands); other packages
add commands through the entry-point group :data:`ENTRY_POINT_GROUP` (``featherface.commands``), one
entry point per command name whose value is its ``register`` function: this is how the ``train``
package's commands (``featherface train``, ``evaluate``, ``pseudo-label``, ``export-checkpoint``) are
wired, declared in pyproject.toml, so that the command line never imports the training package by
name. A module or entry point is loaded only when one of its commands runs (or when the whole list is
needed: ``featherface --help``, no command, an unknown command), so keep command modules cheap to
import and import heavy dependencies inside ``run``. One that cannot be imported is skipped (with a
warning when it exists but an import inside it failed); its commands are then unknown.

Commands that load a detector share one set of flags, :func:`add_model_arguments` (``--model``,
``--weights``, ``--random-weights``, ``--device``, and the detection options, whose help shows the
defaults of :class:`featherface.DetectorOptions`), and :func:`load_detector_from_args` turns them into
a :class:`featherface.FaceDetector`; the examples use the same two functions.

Errors: an expected failure is reported as one line ``featherface: error: <message>`` on stderr,
without a traceback (``-vv`` logs it). The library's exceptions are mapped to exit codes in one place,
:func:`exit_code`: 0 success; 1 failure (:class:`~featherface.errors.WeightsError` and its
subclasses, :class:`~featherface.errors.ImageError`, ``OSError``, a missing optional extra, any other
``ValueError``); 2 usage error (a bad flag or value, :class:`~featherface.errors.DeviceError`,
:class:`~featherface.errors.UnknownModelError`, a path that does not exist, no image found). A
command raises :class:`CLIError` for a failure of its own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, NoReturn

from featherface._version import __version__
from featherface.errors import DeviceError, UnknownModelError, WeightsError

if TYPE_CHECKING:
    from featherface.cli._detect import IMAGE_EXTENSIONS, expand_inputs
    from featherface.cli._models import format_metrics, model_table
    from featherface.cli._options import (
        add_model_arguments,
        detector_options,
        detector_options_from_args,
        load_detector_from_args,
    )

__all__ = [
    "main",
    "build_parser",
    "CLIError",
    "exit_code",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "COMMAND_MODULES",
    "ENTRY_POINT_GROUP",
    "add_model_arguments",
    "load_detector_from_args",
    "detector_options_from_args",
    "detector_options",
    "IMAGE_EXTENSIONS",
    "expand_inputs",
    "model_table",
    "format_metrics",
]

logger = logging.getLogger(__name__)

PROG = "featherface"

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "featherface.cli._detect": ("detect",),
    "featherface.cli._models": ("models", "download"),
    "featherface.cli._convert": ("convert-reference",),
    "featherface.cli._export": ("export",),
    "featherface.cli._bench": ("bench",),
}
"""Core command modules, each mapped to the names of the commands its ``register(subparsers)`` adds
(in the order ``featherface --help`` lists them). See the module docstring."""

ENTRY_POINT_GROUP = "featherface.commands"
"""Entry-point group of the commands other packages add: ``name = "package.module:register"``."""

_LAZY = {  # helpers of the command modules that scripts import from featherface.cli
    "add_model_arguments": "featherface.cli._options",
    "load_detector_from_args": "featherface.cli._options",
    "detector_options_from_args": "featherface.cli._options",
    "detector_options": "featherface.cli._options",
    "IMAGE_EXTENSIONS": "featherface.cli._detect",
    "expand_inputs": "featherface.cli._detect",
    "model_table": "featherface.cli._models",
    "format_metrics": "featherface.cli._models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# -- errors and exit codes ------------------------------------------------------------------------


class CLIError(Exception):
    """An expected failure: :func:`main` prints ``featherface: error: <message>`` and exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def exit_code(exc: BaseException) -> int | None:
    """The exit status of an expected failure, or ``None`` for an unexpected one (a bug: traceback).

    The one mapping of the library's exceptions (:mod:`featherface.errors`) to exit codes.
    """
    if isinstance(exc, CLIError):
        return exc.code
    if isinstance(exc, (DeviceError, UnknownModelError)):  # ValueErrors: checked before them
        return EXIT_USAGE
    # WeightsError (and subclasses), ImageError, ConversionError and other ValueErrors, OSError, and
    # ImportError (a missing optional extra: the message names the pip command)
    if isinstance(exc, (WeightsError, ValueError, OSError, ImportError)):
        return EXIT_FAILURE
    return None


def error_message(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name if it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def print_error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


# -- the parser -----------------------------------------------------------------------------------


class _ParserExit(Exception):
    """Raised instead of ``sys.exit`` by the parser so that :func:`main` can return the code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _ArgumentParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line and which never calls ``sys.exit`` itself."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see '{self.prog} --help')\n")
        raise _ParserExit(EXIT_USAGE)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _ParserExit(status)


_VERBOSE = _ArgumentParser(add_help=False)
_VERBOSE.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                      help="log progress (INFO); -vv for DEBUG")


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The ``subparsers`` given to ``register``: every command also takes ``-v`` and, unless given, its
    description is its help line."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("parents", [_VERBOSE])
        if "help" in kwargs:
            kwargs.setdefault("description", kwargs["help"])
        return super().add_parser(name, **kwargs)


def _command_word(argv: Sequence[str] | None) -> str | None:
    """The first argument that is not an option (top-level options take no value)."""
    for arg in argv or ():
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


Register = Callable[[Any], None]


def _registrars(argv: Sequence[str] | None) -> list[Register]:
    """The ``register`` functions to call: those owning ``argv``'s command, else all of them."""
    plugins = list(entry_points(group=ENTRY_POINT_GROUP))
    modules, points = list(COMMAND_MODULES), plugins
    if argv is not None:
        word = _command_word(argv)
        owners = [m for m, names in COMMAND_MODULES.items() if word in names]
        owned = [ep for ep in plugins if ep.name == word]
        if owners or owned:  # else: help, no command or a typo: list every command
            modules, points = owners, owned
    found: list[Register] = []
    for name in modules:
        module = _load(name, lambda name=name: importlib.import_module(name))
        if module is not None:
            found.append(module.register)
    seen: set[str] = set()
    for ep in points:  # several commands may share one register function
        if ep.value not in seen:
            seen.add(ep.value)
            register = _load(ep.value, ep.load)
            if register is not None:
                found.append(register)
    return found


def _load(what: str, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except ModuleNotFoundError as exc:
        if exc.name is not None and what.startswith(exc.name):  # the module itself is not there
            logger.debug("featherface: CLI module %s not found; its commands are not available", what)
        else:  # e.g. an optional extra is missing: the other commands still work
            logger.warning("featherface: the commands of %s are unavailable: %s", what, exc)
    except ImportError as exc:
        logger.warning("featherface: the commands of %s are unavailable: %s", what, exc)
    return None


def build_parser(argv: Sequence[str] | None = None, *,
                 commands: Sequence[Register] | None = None) -> argparse.ArgumentParser:
    """The ``featherface`` argument parser.

    With ``argv`` given, only the module that owns ``argv``'s command is imported (every module when
    ``argv`` names no known command); with ``argv=None`` every command is included. ``commands``:
    these ``register`` functions instead (a package's own entry point, e.g. ``python -m featherface.train``).
    """
    parser = _ArgumentParser(
        prog=PROG,
        description="FeatherFace face detection: boxes, scores and five landmarks per face.",
        epilog=f"Run '{PROG} <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (INFO); -vv for DEBUG")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", action=_Commands)
    for register in _registrars(argv) if commands is None else commands:
        register(sub)
    return parser


# -- entry point ----------------------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (survives stream redirection in tests)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # set by StreamHandler.__init__; ignored
        pass


def _setup_logging(verbosity: int) -> None:
    root = logging.getLogger("featherface")
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.propagate = False
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root.setLevel(level)


def main(argv: Sequence[str] | None = None, *, commands: Sequence[Register] | None = None) -> int:
    """Run the ``featherface`` command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    ``commands``: the ``register`` functions of the commands to offer (default: every command, see the
    module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv, commands=commands)
    try:
        args = parser.parse_args(argv)
    except _ParserExit as exc:
        return exc.code
    _setup_logging(getattr(args, "verbose", 0) or 0)
    run = getattr(args, "func", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args))
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `featherface detect ... | head`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_FAILURE
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        print_error(error_message(exc))
        logger.debug("featherface: traceback", exc_info=True)
        return code


if __name__ == "__main__":  # pragma: no cover - ``python -m featherface`` goes through __main__.py
    sys.exit(main())
