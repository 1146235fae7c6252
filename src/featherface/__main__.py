"""``python -m featherface``: the same command line as the ``featherface`` console script."""

from __future__ import annotations

import sys

from featherface.cli import main

if __name__ == "__main__":
    sys.exit(main())
