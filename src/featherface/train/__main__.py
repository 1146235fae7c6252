"""``python -m featherface.train CONFIG [--resume CKPT] [--export DIR]``: ``featherface train``.

This is the entry point for data-parallel runs::

    torchrun --nproc_per_node=4 -m featherface.train configs/v2_ultra.yaml

Progress is logged at INFO level (``-v`` is implied; pass ``-q`` for warnings only). Every rank
runs this; rank 0 logs, writes checkpoints and exports.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from featherface.cli import main as cli_main
    from featherface.train.cli import register

    args = list(sys.argv[1:] if argv is None else argv)
    verbosity = [a for a in args if a in ("-v", "-vv", "--verbose")]
    quiet = "-q" in args
    rest = [a for a in args if a not in ("-v", "-vv", "--verbose", "-q")]
    flags = [] if quiet else (verbosity or ["-v"])
    return cli_main([*flags, "train", *rest], commands=[register])


if __name__ == "__main__":
    sys.exit(main())
