"""``featherface export``: write a detector as an ONNX file (see :mod:`featherface.export`).

Registered into the ``featherface`` command table on import; cheap to import (torch is imported by
the command itself).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from featherface import cli

FORMATS = ("onnx",)


def _add_export_arguments(p: argparse.ArgumentParser) -> None:
    cli.add_model_arguments(p, detection_options=False)
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
    g.add_argument("--score-threshold", metavar="F", type=float, default=None,
                   help="keep faces scoring above this (default 0.5)")
    g.add_argument("--iou-threshold", metavar="F", type=float, default=None, help="NMS IoU threshold (default 0.4)")
    g.add_argument("--max-detections", metavar="N", type=int, default=None,
                   help="at most N faces per image (default 750)")
    g.add_argument("--pre-nms-top-k", metavar="N", type=int, default=None,
                   help="best N candidates per image kept before NMS (default 5000)")


def _cmd_export(args: argparse.Namespace) -> int:
    from featherface.export import export_onnx

    out = Path(args.output)
    if out.is_dir():
        raise cli.CLIError(f"--output {out} is a folder; give a file name such as {out / 'model.onnx'}", cli.EXIT_USAGE)
    graph_options = {"score_threshold": args.score_threshold, "iou_threshold": args.iou_threshold,
                     "max_detections": args.max_detections, "pre_nms_top_k": args.pre_nms_top_k}
    graph_options = {k: v for k, v in graph_options.items() if v is not None}
    if graph_options and not args.with_postprocess:
        flags = ", ".join("--" + k.replace("_", "-") for k in graph_options)
        raise cli.CLIError(f"{flags} only apply with --with-postprocess", cli.EXIT_USAGE)
    try:  # validate the values before loading anything
        from featherface.api import DetectorOptions

        DetectorOptions().updated(**graph_options)
    except (TypeError, ValueError) as exc:
        raise cli.CLIError(str(exc), cli.EXIT_USAGE) from None
    args.device = args.device or "cpu"  # the export runs on the CPU
    det = cli.load_detector_from_args(args)
    try:
        path = export_onnx(det, out, with_postprocess=args.with_postprocess, opset=args.opset,
                           input_dtype=args.input_dtype, **graph_options)
    except ImportError as exc:  # the onnx extra is not installed
        raise cli.CLIError(str(exc)) from None
    kind = ("detector graph: input -> boxes, scores, landmarks, batch_index" if args.with_postprocess
            else "raw graph: input -> loc, logits, landmarks")
    print(f"{path}: {det.name} ({det.weights_source} weights), {kind}, opset {args.opset}")
    return cli.EXIT_OK


cli.register_subcommand(
    cli.Subcommand(
        "export", "export a model to ONNX (raw network, or the whole detector with --with-postprocess)",
        _add_export_arguments, _cmd_export,
        "Export a model to an ONNX file with dynamic batch, height and width. By default the raw network "
        "(BatchNorm folded): 'input' float32 [B,3,H,W] BGR minus the mean -> 'loc', 'logits', 'landmarks'. "
        "With --with-postprocess the whole detector: raw BGR pixels -> 'boxes' [K,4], 'scores' [K], "
        "'landmarks' [K,10], 'batch_index' [K]. See docs/deployment.md.",
    )
)
