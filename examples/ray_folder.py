"""Detect faces in a folder with Ray Data on a local Ray cluster; one JSON line per image.

    pip install "featherface[ray]"
    python examples/ray_folder.py photos/ --actors 2 > faces.jsonl

The packaged ``v2_ultra`` weights are used by default; ``--weights FOLDER`` loads your own
(``config.json`` + ``model.safetensors``), ``--model v1`` the installed reference V1.

Ray reads the files (``ray.data.read_binary_files``) and ``--actors`` actors each load the model
once (``featherface.integrations.ray.RayFaceDetector``) and detect batches of ``--batch-size``
images. Each line is ``{"image": path, "faces": [{"box", "score", "landmarks"}, ...]}`` (sorted
by path); unreadable files are reported on stderr (exit code 1 at the end). The local cluster gets
``--num-cpus`` CPUs (default 2); actors ask for half a CPU each so the file readers keep some.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from featherface.cli import IMAGE_EXTENSIONS, add_model_arguments, detector_options_from_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of images (jpg, jpeg, png, bmp, webp, tif, tiff)")
    p.add_argument("--actors", type=int, default=2, metavar="N", help="detector actors (default 2)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per actor call (default 8)")
    p.add_argument("--num-cpus", type=int, default=2, metavar="N", help="CPUs of the local Ray cluster (default 2)")
    add_model_arguments(p)
    return p.parse_args(argv)


def detect_folder(folder: str | Path, *, actors: int = 2, batch_size: int = 8, num_cpus: int = 2,
                  **detector_kwargs: Any) -> list[dict[str, Any]]:
    """Rows ``{"path", "boxes", "scores", "landmarks", "error"}`` for every image file of ``folder``.

    ``detector_kwargs`` go to :class:`featherface.integrations.ray.RayFaceDetector` (``model``,
    ``weights``, ``pretrained``, ``device``, detection options).
    """
    import ray

    from featherface.integrations.ray import RayFaceDetector

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        suffixes = sorted(s.lstrip(".") for s in IMAGE_EXTENSIONS)
        ds = ray.data.read_binary_files(str(folder), include_paths=True, file_extensions=suffixes)
        ds = ds.map_batches(
            RayFaceDetector, fn_constructor_kwargs=detector_kwargs,
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0.5,
            batch_size=batch_size, batch_format="numpy",
        )
        rows = ds.drop_columns(["bytes"]).take_all()
    finally:
        if started:
            ray.shutdown()
    return sorted(rows, key=lambda r: r["path"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kwargs: dict[str, Any] = {"model": args.model, "device": args.device or "cpu", **detector_options_from_args(args)}
    if args.random_weights:
        kwargs["pretrained"] = False  # each actor gets its own random network: mechanics only
    elif args.weights:
        kwargs["weights"] = args.weights
    failures = 0
    for row in detect_folder(args.folder, actors=args.actors, batch_size=args.batch_size, num_cpus=args.num_cpus,
                             **kwargs):
        if row["error"]:
            failures += 1
            print(f"{row['path']}: {row['error']}", file=sys.stderr)
            continue
        faces = [{"box": [float(v) for v in b], "score": float(s), "landmarks": [[float(x), float(y)] for x, y in lm]}
                 for b, s, lm in zip(row["boxes"].reshape(-1, 4), row["scores"].reshape(-1),
                                     row["landmarks"].reshape(-1, 5, 2))]
        print(json.dumps({"image": row["path"], "faces": faces}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
