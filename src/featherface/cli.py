"""The ``featherface`` command line: ``featherface detect|models|download|convert-reference ...``.

Nothing is parsed at import time: :func:`main` builds the parser (:func:`build_parser`) on each call,
and importing this module pulls in neither torch nor OpenCV (commands import what they need).

Subcommands live in a table. Each one is a :class:`Subcommand`: a name, a one-line help, a function
that adds its arguments to its sub-parser and a ``_cmd_<name>(args) -> int`` function that runs it.
To add commands from another file, write a module (cheap to import: heavy imports inside the run
functions) that either calls :func:`register_subcommand` at import time or defines
``register(subparsers)``, and list it in :data:`SUBCOMMAND_MODULES` with the names of its commands
(one line here). It is imported only when one of its commands runs (or for ``featherface --help``);
a listed module that does not exist yet is skipped.

Commands that load a detector share one set of flags, :func:`add_model_arguments` (``--model``,
``--weights``, ``--random-weights``, ``--device``, thresholds and scale policy), and
:func:`load_detector_from_args` turns them into a :class:`featherface.FaceDetector`; the examples
use the same two functions.

Errors: an expected failure (missing file, unknown model, unusable weights, bad option value) is
reported as one line ``featherface: error: <message>`` on stderr, without a traceback. Exit codes:
0 success, 1 failure (e.g. an unreadable image, weights not available), 2 usage error (bad flag or
value, missing path, unknown model, no image found).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from featherface._version import __version__

if TYPE_CHECKING:
    from featherface.api import FaceDetector

logger = logging.getLogger(__name__)

PROG = "featherface"

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""File suffixes (case-insensitive) picked up when a directory is given to ``featherface detect``."""

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """An expected failure: :func:`main` prints ``featherface: error: <message>`` and exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


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


# -- the subcommand table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subcommand:
    """One ``featherface <name>`` command.

    Attributes:
        name: the command word.
        help: one line shown in ``featherface --help``.
        add_arguments: adds the command's arguments to its sub-parser.
        run: executes the command with the parsed arguments and returns the exit code.
        description: longer text for ``featherface <name> --help`` (default: ``help``).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


_SUBCOMMANDS: dict[str, Subcommand] = {}

SUBCOMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "featherface.train.cli": ("train", "evaluate", "pseudo-label", "export-checkpoint"),
    "featherface.export_cli": ("export",),
    "featherface.bench": ("bench",),
}
"""Modules that add commands, mapped to the command names they add. A module is imported only when
one of its commands is run, or when the full command list is needed (``featherface --help``, an
unknown command). It adds its commands either by calling :func:`register_subcommand` at import
time, or by defining ``register(subparsers)`` which receives the ``featherface`` sub-parsers action
(its parsers then ``set_defaults(func=run)`` or ``_run=run`` with ``run(args) -> int``). A listed
module that does not exist (yet) is skipped."""


def register_subcommand(command: Subcommand, *, overwrite: bool = False) -> None:
    """Add a command to the ``featherface`` CLI (see the module docstring)."""
    if not isinstance(command, Subcommand):
        raise TypeError(f"register_subcommand expects a Subcommand, got {type(command).__name__}")
    if command.name in _SUBCOMMANDS and not overwrite and _SUBCOMMANDS[command.name] != command:
        raise ValueError(f"subcommand {command.name!r} is already registered")
    _SUBCOMMANDS[command.name] = command


def _command_word(argv: Sequence[str] | None) -> str | None:
    """The first argument that is not an option (top-level options take no value)."""
    for arg in argv or ():
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _modules_for(argv: Sequence[str] | None) -> list[str]:
    if argv is None:
        return list(SUBCOMMAND_MODULES)
    word = _command_word(argv)
    if word in _SUBCOMMANDS:
        return []
    owners = [m for m, names in SUBCOMMAND_MODULES.items() if word in names]
    return owners or list(SUBCOMMAND_MODULES)  # help, no command or a typo: list every command


def _import_module(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):  # not written (or not installed) yet
            logger.debug("featherface: CLI module %s not found; its commands are not available", module)
        else:  # e.g. an optional extra is missing: the other commands still work
            logger.warning("featherface: the commands of %s are unavailable: %s", module, exc)
    except ImportError as exc:
        logger.warning("featherface: the commands of %s are unavailable: %s", module, exc)
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``featherface`` argument parser.

    With ``argv`` given, modules of :data:`SUBCOMMAND_MODULES` are imported only if ``argv`` runs one
    of their commands (or needs the full list); with ``argv=None`` every command is included.
    """
    modules = [m for m in (_import_module(name) for name in _modules_for(argv)) if m is not None]
    verbose = _ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                         help="log progress (INFO); -vv for DEBUG")
    parser = _ArgumentParser(
        prog=PROG,
        description="FeatherFace face detection: boxes, scores and five landmarks per face.",
        epilog=f"Run '{PROG} <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (INFO); -vv for DEBUG")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in _SUBCOMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.description or command.help,
                           parents=[verbose])
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    for module in modules:
        register = getattr(module, "register", None)
        if callable(register):
            register(sub)
    return parser


# -- shared flags for commands that load a detector ---------------------------------------------


def add_model_arguments(parser: argparse.ArgumentParser, *, detection_options: bool = True) -> None:
    """Add ``--model/--weights/--random-weights/--device`` (and threshold/scale flags) to ``parser``."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", metavar="NAME", default=None,
                   help="registered model name (see 'featherface models'); default v2_ultra, or the "
                        "model described by --weights' config.json")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="PATH", default=None,
                     help="your own weights: a folder with config.json + model.safetensors, or a "
                          ".safetensors file (with --model)")
    src.add_argument("--random-weights", action="store_true",
                     help="randomly initialised network (seeded), for testing only: detections are meaningless")
    g.add_argument("--device", metavar="DEV", default=None,
                   help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    if not detection_options:
        return
    o = parser.add_argument_group("detection options")
    o.add_argument("--score-threshold", metavar="F", type=float, default=None,
                   help="keep faces scoring above this (default 0.5)")
    o.add_argument("--iou-threshold", metavar="F", type=float, default=None,
                   help="NMS IoU threshold (default 0.4)")
    o.add_argument("--max-detections", metavar="N", type=int, default=None,
                   help="at most N faces per image, best first (default 750)")
    o.add_argument("--input-size", metavar="N|HxW", type=_parse_input_size, default=None,
                   help="scale the image so its longer side is N (up or down), or resize to exactly HxW "
                        "(default: original size)")
    o.add_argument("--max-size", metavar="N", type=int, default=None,
                   help="downscale images whose longer side exceeds N (default: no limit)")


def _parse_input_size(text: str) -> int | tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW (e.g. 640 or 480x640), got {text!r}") from None


def detector_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`featherface.DetectorOptions` given on the command line (only those set)."""
    names = ("score_threshold", "iou_threshold", "max_detections", "input_size", "max_size")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _check_device(device: str | None) -> None:
    """``--device``: the API's own check (:func:`featherface.api.resolve_device`), so the command line
    and ``load_model(device=...)`` report an unusable device with the same message."""
    if device is None:
        return
    from featherface.api import DeviceError, resolve_device

    try:
        resolve_device(device)
    except DeviceError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None


def load_detector_from_args(args: argparse.Namespace, **extra_options: Any) -> FaceDetector:
    """Build the detector described by :func:`add_model_arguments` flags.

    Raises :class:`CLIError` (exit 2) for an unknown model, a bad device or option value, and
    (exit 1) when the model has no published weights and neither ``--weights`` nor
    ``--random-weights`` was given. Weights errors from :mod:`featherface.hub` propagate.
    """
    from featherface.api import DEFAULT_MODEL, DetectorOptions, load_model
    from featherface.hub import install_hint, is_installed
    from featherface.registry import get_spec

    options = {**detector_options_from_args(args), **extra_options}
    try:
        DetectorOptions().updated(**options)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    name: str | None = args.model
    weights = getattr(args, "weights", None)
    random_weights = bool(getattr(args, "random_weights", False))
    if name is None and weights is None:
        name = DEFAULT_MODEL
    if name is not None:
        try:
            spec = get_spec(name)
        except ValueError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
        if weights is None and not random_weights and spec.weights is None and not is_installed(name):
            hint = install_hint(name)
            raise CLIError(
                f"model {name!r} has no published weights yet; {hint + '; or ' if hint else ''}pass --weights "
                "PATH (a folder with config.json + model.safetensors) or --random-weights (testing only)"
            )
    if weights is not None and not Path(weights).expanduser().exists():
        raise CLIError(f"--weights: no such file or directory: {weights}", EXIT_USAGE)
    _check_device(args.device)
    engine: dict[str, Any] = {}
    backend = getattr(args, "backend", None)
    if backend is not None:
        engine["backend"] = backend
    try:
        if random_weights:
            import torch

            with torch.random.fork_rng(devices=[]):  # reproducible without touching the caller's RNG
                torch.manual_seed(0)
                det = load_model(name, device=args.device, pretrained=False, **engine, **options)
        else:
            det = load_model(name, device=args.device, weights=weights, **engine, **options)
    except ImportError as exc:  # --backend onnxruntime without the onnx extra: the message says what to install
        raise CLIError(str(exc).splitlines()[0]) from None
    logger.info("featherface: %r", det)
    return det


# -- detect ---------------------------------------------------------------------------------------


def _add_detect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files and/or folders (folders: every jpg/jpeg/png/bmp/webp/tif/tiff inside)")
    p.add_argument("--recursive", "-r", action="store_true", help="also walk the sub-folders of folders")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object per image: {"image", "width", "height", "faces"}')
    p.add_argument("--save-dir", metavar="DIR", default=None,
                   help="write annotated copies as DIR/<stem>.jpg (a suffix _1, _2... avoids clashes)")
    p.add_argument("--batch-size", metavar="B", type=int, default=1,
                   help="run up to B images of the same network-input size per network call (default 1)")
    p.add_argument("--workers", metavar="W", type=int, default=0,
                   help="decode and resize images in W worker processes (default 0: in this process)")
    add_model_arguments(p)
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default=None,
                   help="inference engine (default torch); onnxruntime runs on the CPU and needs the onnx "
                        "extra: pip install \"featherface[onnx]\"")


def expand_inputs(inputs: Iterable[str], *, recursive: bool = False) -> list[Path]:
    """Files given explicitly (any suffix) and the image files inside folders, in a stable order.

    Raises :class:`CLIError` (exit 2) for a URL (not fetched: :func:`featherface.io.reject_url`), a path
    that does not exist, or when no image is found.
    """
    from featherface.io import ImageError, reject_url

    inputs = list(inputs)
    found: list[Path] = []
    seen: set[Path] = set()
    hint = ""
    empty: list[str] = []
    for text in inputs:
        try:
            reject_url(text)
        except ImageError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
        path = Path(text)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.iterdir()
            files = sorted(
                (f for f in walker if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()),
                key=lambda f: f.relative_to(path).parts,
            )
            if not files and not recursive and any(d.is_dir() for d in path.iterdir()):
                hint = " (sub-folders are searched only with --recursive)"
            if not files:
                empty.append(text)
        elif path.exists():
            files = [path]
        else:
            raise CLIError(f"no such file or directory: {text}", EXIT_USAGE)
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    if not found:
        raise CLIError(f"no image found in {', '.join(inputs)}{hint}", EXIT_USAGE)
    for text in empty:
        logger.warning("featherface: no image files in %s%s", text, hint)
    return found


def _unique_output(save_dir: Path, stem: str, used: set[str]) -> Path:
    name, k = f"{stem}.jpg", 0
    while name.lower() in used:
        k += 1
        name = f"{stem}_{k}.jpg"
    used.add(name.lower())
    return save_dir / name


def _write_jpeg(path: Path, bgr: Any) -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"cannot encode {path} as JPEG")
    path.write_bytes(buf.tobytes())  # works for non-ASCII paths, unlike cv2.imwrite on Windows


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _cmd_detect(args: argparse.Namespace) -> int:
    from featherface.io import read_image_file
    from featherface.stream import detect_files
    from featherface.visualize import draw

    if args.batch_size < 1 or args.workers < 0:
        raise CLIError("--batch-size must be >= 1 and --workers >= 0", EXIT_USAGE)
    paths = expand_inputs(args.inputs, recursive=args.recursive)
    save_dir = Path(args.save_dir) if args.save_dir else None
    if save_dir is not None:
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"--save-dir {save_dir}: cannot create the folder ({exc.strerror or exc})") from None
    det = load_detector_from_args(args)
    used: set[str] = set()
    failures = 0
    progress = sys.stderr if sys.stderr.isatty() else None  # "N/total images, R images/s"
    for path, faces, size in detect_files(det, paths, batch_size=args.batch_size, workers=args.workers,
                                          progress=progress):
        if isinstance(faces, Exception):  # ImageError (undecodable...), above max_input_pixels
            exc = faces
            failures += 1
            _error(f"{exc}" if str(path) in str(exc) else f"{path}: {exc}")
            continue
        assert size is not None
        height, width = size
        if args.json:
            record = {"image": str(path), "width": width, "height": height, "faces": [f.to_dict() for f in faces]}
            print(json.dumps(record), flush=True)
        else:
            print(f"{path}: {_plural(len(faces), 'face')}")
            for f in faces:
                x1, y1, x2, y2 = f.box
                print(f"  box=({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) score={f.score:.3f}")
        if save_dir is not None:
            out = _unique_output(save_dir, path.stem, used)
            try:
                bgr = read_image_file(path)
                _write_jpeg(out, draw(bgr, faces, color="bgr"))
            except (ValueError, OSError) as exc:
                failures += 1
                _error(f"cannot write {out}: {exc}")
                continue
            logger.info("featherface: wrote %s", out)
            if not args.json:
                print(f"  saved: {out}")
    if failures:
        _error(f"{failures} of {_plural(len(paths), 'image')} failed")
        return EXIT_FAILURE
    return EXIT_OK


# -- models ---------------------------------------------------------------------------------------


def model_table(*, local: bool = False) -> list[dict[str, Any]]:
    """One record per registered model: parameters, weights status, metrics and licence.

    Parameter counts are computed from a freshly built network; metrics come from the registry's
    :class:`featherface.config.WeightsSpec` (measured numbers only, with their protocol).

    Args:
        local: also report this machine's state: a model without published weights whose weights
            are installed in the local store (``featherface convert-reference``) gets ``weights``
            ``"installed"`` and the recorded licence. Off by default so that the table (and
            ``docs/models.md``, generated from it) is the same everywhere.
    """
    from featherface.hub import is_installed, read_install_record
    from featherface.models import count_parameters, thop_equivalent_parameters
    from featherface.registry import build_model, get_spec, list_models

    rows = []
    for name in list_models():
        spec = get_spec(name)
        net = build_model(name)
        w = spec.weights
        installed = local and w is None and is_installed(name)
        try:
            installed_license = read_install_record(name).get("license") if installed else None
        except (OSError, ValueError):
            installed_license = None
        rows.append({
            "name": name,
            "arch": spec.config.arch,
            "description": spec.description,
            "params": count_parameters(net),
            "thop_params": thop_equivalent_parameters(net),
            "weights": ("installed" if installed else "none") if w is None
            else ("packaged" if w.revision is None else "hub"),
            "repo_id": None if w is None else w.repo_id,
            "revision": None if w is None else w.revision,
            "sha256": None if w is None else w.sha256,
            "metrics": {} if w is None else dict(w.metrics),
            "metrics_protocol": None if w is None else (w.metrics_protocol or None),
            "license": installed_license if w is None else w.license,
        })
    return rows


def format_metrics(metrics: dict[str, float], protocol: str | None) -> str:
    """``"name value, ... (protocol)"`` or ``"-"``."""
    if not metrics:
        return "-"
    text = ", ".join(f"{k} {v:g}" for k, v in metrics.items())
    return f"{text} ({protocol})" if protocol else text


def _add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list of records instead of a table")


def _weights_cell(row: dict[str, Any]) -> str:
    """The ``weights`` column of the table: how to install them when they are not published."""
    from featherface.hub import install_hint

    if row["weights"] == "none" and install_hint(row["name"]) is not None:
        return "none (featherface convert-reference PATH installs them)"
    return str(row["weights"])


def _cmd_models(args: argparse.Namespace) -> int:
    rows = model_table(local=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ("name", "params", "thop params", "weights", "metrics", "licence")
    table = [header] + [
        (r["name"], f"{r['params']:,}", f"{r['thop_params']:,}", _weights_cell(r),
         format_metrics(r["metrics"], r["metrics_protocol"]), r["license"] or "-")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


# -- download -------------------------------------------------------------------------------------


def _add_download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="models to fetch (see 'featherface models')")
    p.add_argument("--all", action="store_true",
                   help="every registered model: fetch published weights, report packaged and installed ones, "
                        "list models without published weights as skipped (with how to get them)")
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="Hugging Face cache folder (default: HF_HUB_CACHE, i.e. $HF_HOME/hub)")


def _cmd_download(args: argparse.Namespace) -> int:
    from featherface.hub import (
        WeightsError,
        _hub_errors,
        download_weights,
        install_hint,
        installed_weights_dir,
        is_installed,
    )
    from featherface.registry import get_spec, list_models

    if args.all and args.names:
        raise CLIError("give model names or --all, not both", EXIT_USAGE)
    if not args.all and not args.names:
        raise CLIError(f"name the models to download or pass --all (known models: {', '.join(list_models())})",
                       EXIT_USAGE)
    for name in args.names:
        try:
            get_spec(name)
        except ValueError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
    names = list_models() if args.all else list(dict.fromkeys(args.names))
    download_errors: tuple[type[BaseException], ...] = (WeightsError, *_hub_errors())
    failures = 0
    fetched = 0
    for name in names:
        published = get_spec(name).weights
        if published is not None and published.revision is None:  # ships inside the wheel, not on the Hub
            print(f"{name}: packaged with featherface, nothing to download (it loads offline)")
            continue
        if published is None and is_installed(name):
            print(f"{name}: installed in {installed_weights_dir(name)}, nothing to download (it loads offline)")
            continue
        if published is None and args.all:  # --all fetches what can be fetched; the others are reported
            hint = install_hint(name)
            print(f"{name}: skipped, no published weights" + (f"; {hint}" if hint else ""))
            continue
        if published is None:
            failures += 1
            how = "install the authors' release with 'featherface convert-reference PATH', or " if install_hint(name) else ""
            _error(f"{name}: no published weights yet, nothing to download ({how}use your own with --weights PATH)")
            continue
        try:
            resolved = download_weights([name], cache_dir=args.cache_dir)[name]
        except download_errors as exc:
            failures += 1
            _error(f"{name}: download failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        print(f"{name}: {resolved.model_file} (sha256 {resolved.sha256})")
        fetched += 1
    if fetched:
        from huggingface_hub import constants

        print(f"cache: {args.cache_dir or constants.HF_HUB_CACHE}")
    return EXIT_FAILURE if failures else EXIT_OK


# -- convert-reference ----------------------------------------------------------------------------


_CONVERT_REFERENCE_DESCRIPTION = (
    "Convert the FeatherFace authors' V1 weights (MIT licence, not shipped with featherface) to "
    "featherface's format. With no OUT (or with --install) the result is installed in the local store "
    "($FEATHERFACE_CACHE/installed/v1, default ~/.cache/featherface/installed/v1), after which "
    "featherface.load_model('v1') and 'featherface detect --model v1' work offline; with OUT a weights "
    "folder (config.json + model.safetensors) is written there. SOURCE is the authors' state dict as "
    "safetensors, e.g. featherface_v1_reference.safetensors, or weights/mobilenet0.25_Final.pth of "
    "https://github.com/fokouarnaud/FeatherFace once converted to safetensors (docs/cli.md shows how)."
)


def _add_convert_reference_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="the authors' V1 weights as .safetensors (original key names)")
    p.add_argument("out", metavar="OUT", nargs="?", default=None,
                   help="write a weights folder here instead of installing (add --install to do both)")
    p.add_argument("--install", action="store_true",
                   help="install in the local store (the default when OUT is not given)")


def _cmd_convert_reference(args: argparse.Namespace) -> int:
    from safetensors import SafetensorError

    from featherface.convert import ConversionError, install_reference_v1, load_reference_v1
    from featherface.hub import MODEL_FILENAME, save_weights_folder, sha256_file

    source = Path(args.source)
    if not source.is_file():
        raise CLIError(f"no such file: {source}", EXIT_USAGE)
    try:
        model = load_reference_v1(source)
    except SafetensorError as exc:
        raise CLIError(f"{source}: not a valid safetensors file ({exc})") from None
    except ConversionError as exc:  # one line: the first problems and how many more
        head, *problems = [line.strip() for line in str(exc).splitlines()]
        if not problems:
            raise CLIError(head) from None
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise CLIError(f"{source}: not the authors' V1 weights: {'; '.join(problems[:2])}{more}") from None
    if args.out is not None:
        sha = save_weights_folder(model, model.config, args.out)  # type: ignore[arg-type]
        print(f"wrote {args.out} (model.safetensors sha256 {sha})")
    if args.out is None or args.install:
        folder = install_reference_v1(source, model)
        print(f"installed v1 weights in {folder} (model.safetensors sha256 {sha256_file(folder / MODEL_FILENAME)})")
        print("load them with featherface.load_model(\"v1\") or 'featherface detect IMAGE --model v1' (offline)")
    return EXIT_OK


# -- entry point ----------------------------------------------------------------------------------

for _command in (
    Subcommand("detect", "detect faces in images and folders", _add_detect_arguments, _cmd_detect,
               "Detect faces in image files and folders. Prints one line per image and one per face, or "
               "JSON lines with --json; --save-dir writes annotated copies."),
    Subcommand("models", "list the registered models, their parameter counts and weights", _add_models_arguments,
               _cmd_models),
    Subcommand("download", "fetch published weights into the Hugging Face cache (for offline use)",
               _add_download_arguments, _cmd_download,
               "Fetch the pinned, hashed weights of models into the Hugging Face Hub cache so that "
               "later runs work offline (HF_HUB_OFFLINE=1)."),
    Subcommand("convert-reference", "install the authors' V1 weights (or convert them to a weights folder)",
               _add_convert_reference_arguments, _cmd_convert_reference, _CONVERT_REFERENCE_DESCRIPTION),
):
    register_subcommand(_command)
del _command


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


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def _expected_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [CLIError, ValueError, OSError]
    if "featherface.hub" in sys.modules:  # imported by every command that loads weights
        errors.append(sys.modules["featherface.hub"].WeightsError)
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``featherface`` command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except _ParserExit as exc:
        return exc.code
    _setup_logging(getattr(args, "verbose", 0) or 0)
    run = getattr(args, "_run", None) or getattr(args, "func", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args))
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `featherface detect ... | head`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_FAILURE
    except Exception as exc:
        if not isinstance(exc, _expected_errors()):
            raise
        code = exc.code if isinstance(exc, CLIError) else EXIT_FAILURE
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _error(message)
        logger.debug("featherface: traceback", exc_info=True)
        return code


if __name__ == "__main__":  # pragma: no cover - ``python -m featherface`` goes through __main__.py
    sys.exit(main())
