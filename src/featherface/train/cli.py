"""Command-line entry points of the training stack: ``featherface train CONFIG``, ``featherface
evaluate``, ``featherface pseudo-label``, ``featherface second-label`` and ``featherface export-checkpoint``.

A command module like every other (see :mod:`featherface.cli`): it defines ``register(subparsers)``,
declared for each of its commands in the ``featherface.commands`` entry-point group (pyproject.toml);
the main CLI loads it only when one of these commands runs (or for ``featherface --help``). The commands need the ``train``
extra, imported inside each ``cmd_*`` function, so this module stays cheap to import.
(``featherface convert-reference`` is a core command, :mod:`featherface.cli._convert`: it needs only
torch and safetensors.)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["register", "cmd_train", "cmd_evaluate", "cmd_pseudo_label", "cmd_second_label", "cmd_export"]

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the training commands to ``sub`` (the ``featherface`` subparsers)."""
    p = sub.add_parser("train", help="train a model from a YAML/JSON config (needs the train extra)",
                       description="Train a model from a YAML/JSON config. Under torchrun (WORLD_SIZE, RANK, "
                                   "LOCAL_RANK set) it trains data parallel: 'torchrun --nproc_per_node=N "
                                   "$(which featherface) train CONFIG' or 'torchrun --nproc_per_node=N -m "
                                   "featherface.train CONFIG'; batch_size is the global batch.")
    p.add_argument("config", help="training config file (see configs/)")
    p.add_argument("--resume", help="checkpoint to resume from (exact: same next step)")
    p.add_argument("--export", metavar="DIR", help="export the final weights folder (config.json, model.safetensors, README.md)")
    p.set_defaults(func=cmd_train)

    from featherface.cli._options import positive_int

    p = sub.add_parser("evaluate", help="WIDER FACE val Easy/Medium/Hard AP with the official protocol")
    p.add_argument("--model", metavar="NAME",
                   help="registered model: its published (or installed) weights, or with --weights the "
                        "architecture of a bare .safetensors file")
    p.add_argument("--weights", metavar="PATH",
                   help="weights folder (config.json + model.safetensors), or a .safetensors file with --model")
    p.add_argument("--widerface", required=True, metavar="ROOT",
                   help="folder with val/images/<event>/*.jpg and ground_truth/*.mat")
    p.add_argument("--gt-dir", help="ground-truth .mat folder (default: ROOT/ground_truth)")
    p.add_argument("--out", metavar="DIR", help="keep the prediction files here")
    p.add_argument("--subset", metavar="N", type=positive_int,
                   help="fixed seeded subset of N images (learning curves; not the benchmark)")
    p.add_argument("--max-size", metavar="N", type=positive_int,
                   help="downscale images above this side (departs from the protocol)")
    p.add_argument("--plot", metavar="PNG", help="save precision-recall curves")
    p.add_argument("--device", help="cpu, cuda, ...")
    p.add_argument("--threads", metavar="N", type=positive_int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("pseudo-label", help="teacher pseudo-labels (landmarks for boxes, or labels for unlabelled photos)")
    p.add_argument("--teacher", required=True, help="reference v1 .safetensors (authors' keys) or a weights folder")
    p.add_argument("--out", required=True, help="output JSON lines file")
    p.add_argument("--images", required=True, help="images root (paths in the output are relative to it)")
    p.add_argument("--widerface-labels", help="official bbx_gt file: add landmarks to its boxes")
    p.add_argument("--unlabelled", action="store_true",
                   help="label every image under --images with teacher detections (appends; resumable)")
    p.add_argument("--score-threshold", type=float, default=0.6,
                   help="teacher score from which a detection is a face (default 0.6)")
    p.add_argument("--ignore-threshold", type=float, default=0.2,
                   help="--unlabelled: detections scoring from this up to --score-threshold become ignore "
                        "regions (default 0.2)")
    p.add_argument("--max-side", type=int, default=2048,
                   help="--unlabelled: cap of the teacher's network input, longer side (default 2048)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"),
                   help="--unlabelled: engine of the teacher (default onnxruntime)")
    p.add_argument("--threads", metavar="N", type=positive_int, help="CPU threads of the teacher")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_pseudo_label)

    p = sub.add_parser("second-label", help="merge YuNet (OpenCV's face detector) into teacher pseudo-labels",
                       description="Read a pseudo-label file (featherface pseudo-label --unlabelled) and write a "
                                   "copy where teacher ignore regions that a confident YuNet face overlaps become "
                                   "faces (YuNet's box and landmarks), and confident YuNet faces the teacher has "
                                   "no label for become ignore regions (featherface.train.second_labeller). "
                                   "Resumable.")
    p.add_argument("--yunet", required=True, help="YuNet ONNX file (opencv_zoo face_detection_yunet)")
    p.add_argument("--labels", required=True, help="input JSON lines file")
    p.add_argument("--images", required=True, help="images root of the labels file")
    p.add_argument("--out", required=True, help="output JSON lines file (appended to when it exists)")
    p.add_argument("--min-score", type=float, default=0.8, help="YuNet score of a face it vouches for (default 0.8)")
    p.add_argument("--match-iou", type=float, default=0.5,
                   help="IoU at which a YuNet face and a teacher region are one face (default 0.5)")
    p.add_argument("--max-side", type=int, default=2048, help="cap of YuNet's input, longer side (default 2048)")
    p.add_argument("--threads", metavar="N", type=positive_int, default=1, help="OpenCV threads (default 1)")
    p.set_defaults(func=cmd_second_label)

    p = sub.add_parser("export-checkpoint", help="training checkpoint -> Hub-ready weights folder")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights even if the checkpoint has EMA")
    p.add_argument("--card", help="JSON file with ModelCard fields")
    p.set_defaults(func=cmd_export)


def cmd_train(args: argparse.Namespace) -> int:
    from featherface.train.config import TrainConfig
    from featherface.train.loop import train
    from featherface.train.weights_folder import ModelCard, export_model

    cfg = TrainConfig.from_file(args.config)
    trainer = train(cfg, resume=args.resume)  # joins the process group when run under torchrun
    if not trainer.is_main:  # rank 0 reports and exports
        return 0
    print(f"finished at step {trainer.step}; checkpoint {Path(cfg.out_dir) / 'last.pt'}")
    if args.export:
        card = ModelCard(
            title=f"featherface {cfg.model}", summary=f"{cfg.model} trained with featherface.train.",
            training_data=", ".join(f"{s.format}:{s.labels}" for s in cfg.train_data),
            recipe=json.dumps({k: v for k, v in cfg.to_dict().items() if k not in ("train_data",)}),
            hardware=str(trainer.device),
        )
        sha = export_model(trainer.eval_model(), trainer.model_config, args.export, card)
        print(f"exported {args.export} (sha256 {sha})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    import featherface
    from featherface.cli import EXIT_USAGE, CLIError
    from featherface.train.widerface_eval import evaluate_detector_on_widerface

    if args.model is None and args.weights is None:
        raise CLIError("evaluate needs --model NAME (its published weights), --weights PATH, or both "
                       "(--model names the architecture of a bare .safetensors file)", EXIT_USAGE)
    if args.threads:
        torch.set_num_threads(args.threads)
    det = featherface.load_model(args.model, weights=args.weights, device=args.device, num_threads=args.threads)
    res = evaluate_detector_on_widerface(
        det, None, args.widerface, subset=args.subset, max_size=args.max_size, pred_dir=args.out,
        gt_dir=args.gt_dir, plot=args.plot, progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps({k: v for k, v in res.items()}))
    else:
        print(f"model: {det.name} ({det.weights_source} weights), {res['num_images']} images, "
              f"{res['images_per_s']:.2f} images/s, {torch.get_num_threads()} CPU threads, device {det.device}")
        print(f"protocol: {res['protocol']}")
        print("AP  easy {:.2f}  medium {:.2f}  hard {:.2f}".format(*(100 * res[k] for k in ("easy", "medium", "hard"))))
    return 0


def cmd_pseudo_label(args: argparse.Namespace) -> int:
    import torch

    from featherface.train.checkpoint import load_teacher
    from featherface.train.data import image_files, read_widerface_bbx_gt
    from featherface.train.pseudo import label_landmarks, label_unlabelled

    if args.unlabelled:
        from featherface._api import FaceDetector
        from featherface.train.pseudo import TeacherLabelPolicy

        teacher = load_teacher(args.teacher, torch.device("cpu"))
        detector = FaceDetector(teacher, teacher.config, device=args.device, backend=args.backend,  # type: ignore[arg-type]
                                num_threads=args.threads, weights_source="teacher")
        policy = TeacherLabelPolicy(face_threshold=args.score_threshold, ignore_threshold=args.ignore_threshold,
                                    max_side=args.max_side)
        paths = image_files(args.images)
        stats = label_unlabelled(detector, paths, args.out, args.images, policy=policy,
                                 progress=sys.stderr.isatty())
    elif args.widerface_labels:
        teacher = load_teacher(args.teacher, torch.device(args.device))
        samples = read_widerface_bbx_gt(args.widerface_labels, args.images, require_images=True)
        stats = label_landmarks(teacher, samples, args.out, args.images, device=args.device)
    else:
        raise ValueError("pass --widerface-labels FILE or --unlabelled")
    print(json.dumps(stats))
    return 0


def cmd_second_label(args: argparse.Namespace) -> int:
    import cv2

    from featherface.train.second_labeller import SecondLabelPolicy, create_yunet, relabel

    policy = SecondLabelPolicy(min_score=args.min_score, match_iou=args.match_iou, max_side=args.max_side)
    cv2.setNumThreads(args.threads)
    stats = relabel(args.labels, args.images, create_yunet(args.yunet), args.out, policy=policy,
                    progress=sys.stderr.isatty())
    print(json.dumps(stats))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from featherface.train.weights_folder import ModelCard, export_checkpoint

    card = None
    if args.card:
        data = json.loads(Path(args.card).read_text(encoding="utf-8"))
        card = ModelCard(**data)
    sha = export_checkpoint(args.checkpoint, args.out, card, use_ema=not args.no_ema)
    print(f"exported {args.out} (sha256 {sha})")
    return 0
