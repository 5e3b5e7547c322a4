#!/usr/bin/env python
"""Find the four MNIST files the way the app does, downloading them when missing.

    python scripts/fetch_mnist.py      # make test and make bench run this first

The folder: MNIST_DIR, else <MNIST_DATA_HOME>/mnist (the app's data folder); missing
files are downloaded there with a progress bar, from MNIST_MIRROR first, then the public
mirrors, each kept only once its md5 matches.  Prints the folder; offline with no copy,
says what to do and exits 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.ml import data  # noqa: E402
from app.settings import Settings  # noqa: E402


def main() -> int:
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    settings = Settings.load()
    try:
        folder = data.find_or_fetch(settings, progress=data.tqdm_progress())
    except data.MNISTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"MNIST files: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
