"""``featherface export``: write a detector as an ONNX file (see :mod:`featherface._export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from featherface.cli import EXIT_OK, EXIT_USAGE, CLIError
from featherface.cli._options import (
    add_detection_option_arguments,
    add_model_arguments,
    detector_options,
    load_detector_from_args,
)

__all__ = ["FORMATS", "register"]

FORMATS = ("onnx",)
_GRAPH_OPTIONS = ("score_threshold", "iou_threshold", "max_detections", "pre_nms_top_k")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="export a model to ONNX (raw network, or the whole detector with --with-postprocess)",
        description="Export a model to an ONNX file with dynamic batch, height and width. By default the raw "
                    "network (BatchNorm folded): 'input' float32 [B,3,H,W] BGR minus the mean -> 'loc', 'logits', "
                    "'landmarks'. With --with-postprocess the whole detector: raw BGR pixels -> 'boxes' [K,4], "
                    "'scores' [K], 'landmarks' [K,10], 'batch_index' [K]. See docs/deployment.md.",
    )
    add_model_arguments(p, detection_options=False)
    out = p.add_argument_group("output")
    out.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default onnx)")
    out.add_argument("-o", "--output", metavar="OUT", required=True, help="file to write, e.g. model.onnx")
    out.add_argument("--opset", metavar="N", type=int, default=17,
                     help="ONNX opset (default 17, portable; 19 or newer writes V1's deformable convs as "
                          "DeformConv nodes, which recent ONNX Runtime releases run faster)")
    out.add_argument("--with-postprocess", action="store_true",
                     help="whole detector: raw BGR pixels [B,3,H,W] in; boxes, scores, landmarks, batch_index "
                          "out (default: the raw network, input minus mean in; loc, logits, landmarks out)")
    g = p.add_argument_group("detector graph (--with-postprocess; constants of the graph)")
    g.add_argument("--input-dtype", choices=("uint8", "float32"), default="uint8",
                   help="element type of the pixel input (default uint8)")
    add_detection_option_arguments(g, _GRAPH_OPTIONS)
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from featherface._export import export_onnx

    out = Path(args.output)
    if out.is_dir():
        raise CLIError(f"--output {out} is a folder; give a file name such as {out / 'model.onnx'}", EXIT_USAGE)
    graph_options = {k: getattr(args, k) for k in _GRAPH_OPTIONS if getattr(args, k) is not None}
    if graph_options and not args.with_postprocess:
        flags = ", ".join("--" + k.replace("_", "-") for k in graph_options)
        raise CLIError(f"{flags} only apply with --with-postprocess", EXIT_USAGE)
    detector_options(**graph_options)  # bad values are usage errors, found before anything is loaded
    args.device = args.device or "cpu"  # the export runs on the CPU
    det = load_detector_from_args(args)
    path = export_onnx(det, out, with_postprocess=args.with_postprocess, opset=args.opset,
                       input_dtype=args.input_dtype, **graph_options)
    kind = ("detector graph: input -> boxes, scores, landmarks, batch_index" if args.with_postprocess
            else "raw graph: input -> loc, logits, landmarks")
    print(f"{path}: {det.name} ({det.weights_source} weights), {kind}, opset {args.opset}")
    return EXIT_OK
