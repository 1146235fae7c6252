"""``featherface convert-reference``: install the FeatherFace authors' V1 weights (or convert them to a folder).

A core command: it needs only torch and safetensors, not the ``train`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from featherface.cli import EXIT_OK, EXIT_USAGE, CLIError

__all__ = ["register"]

_DESCRIPTION = (
    "Convert the FeatherFace authors' V1 weights (MIT licence, not shipped with featherface) to "
    "featherface's format. With no OUT (or with --install) the result is installed in the local store "
    "($FEATHERFACE_CACHE/installed/v1, default ~/.cache/featherface/installed/v1), after which "
    "featherface.load_model('v1') and 'featherface detect --model v1' work offline; with OUT a weights "
    "folder (config.json + model.safetensors) is written there. SOURCE is the authors' "
    "weights/mobilenet0.25_Final.pth of https://github.com/fokouarnaud/FeatherFace at commit 17aa64d "
    "(sha256 78cee1c6...; the file at the repository's head is another network, which is refused; "
    "docs/cli.md gives the download address), read with torch.load(weights_only=True), or the same "
    "state dict as .safetensors (e.g. featherface_v1_reference.safetensors)."
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("convert-reference",
                       help="install the authors' V1 weights (or convert them to a weights folder)",
                       description=_DESCRIPTION)
    p.add_argument("source", metavar="SOURCE", help="the authors' V1 weights (original key names): their mobilenet0.25_Final.pth at commit "
                        "17aa64d, or the same state dict as .safetensors")
    p.add_argument("out", metavar="OUT", nargs="?", default=None,
                   help="write a weights folder here instead of installing (add --install to do both)")
    p.add_argument("--install", action="store_true",
                   help="install in the local store (the default when OUT is not given)")
    p.set_defaults(func=_cmd_convert_reference)


def _take() -> str:
    from featherface._weights.convert import reference_v1_source

    return reference_v1_source()


def _cmd_convert_reference(args: argparse.Namespace) -> int:
    from featherface._weights.convert import install_reference_v1, load_reference_v1, which_authors_file
    from featherface._weights.files import MODEL_FILENAME, save_weights_folder, sha256_file
    from featherface.errors import ConversionError

    source = Path(args.source)
    if not source.exists():
        raise CLIError(f"no such file: {source}", EXIT_USAGE)
    if not source.is_file():
        raise CLIError(f"{source}: not a file (SOURCE is the authors' weights file)", EXIT_USAGE)
    known = which_authors_file(sha256_file(source))
    if known is not None and not known.is_v1:  # named from its hash, before any deserialisation
        raise CLIError(f"{source}: this is {known.what}; convert-reference takes FeatherFace V1: "
                       f"{_take()}")
    try:
        model = load_reference_v1(source)
    except ConversionError as exc:  # one line: the first problems and how many more
        head, *problems = [line.strip() for line in str(exc).splitlines()]
        if not problems:
            raise CLIError(head) from None
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise CLIError(f"{source}: not the authors' V1 weights: {'; '.join(problems[:2])}{more}; "
                       f"use {_take()}") from None
    if args.out is not None:
        sha = save_weights_folder(model, model.config, args.out)  # type: ignore[arg-type]
        print(f"wrote {args.out} (model.safetensors sha256 {sha})")
    if args.out is None or args.install:
        folder = install_reference_v1(source, model)
        print(f"installed v1 weights in {folder} (model.safetensors sha256 {sha256_file(folder / MODEL_FILENAME)})")
        print("load them with featherface.load_model(\"v1\") or 'featherface detect IMAGE --model v1' (offline)")
    if known is not None:
        print(f"source recognised by its sha256: {known.what}")
    return EXIT_OK
