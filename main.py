#!/usr/bin/env python
"""MNIST Digit Classifier: draw a digit, a CNN trained on MNIST reads it.

    python main.py          # or: make run

Uses the embedded PostgreSQL server unless DATABASE_URL or DB_HOST is set (see .env).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description="The MNIST Digit Classifier desktop app.")
    parser.add_argument("--self-test", action="store_true",
                        help="check the model, the embedded database and Qt, print 'self-test ok' and exit")
    args, qt_args = parser.parse_known_args(argv[1:])
    if args.self_test:
        import logging

        from app.selftest import run_self_test

        logging.basicConfig(level=logging.ERROR)
        return run_self_test()
    from app.application import run

    return run([argv[0], *qt_args])


if __name__ == "__main__":
    # Training runs in a child process started with "spawn": in the packaged executable
    # that child is this program again, and this call turns it into the training process.
    multiprocessing.freeze_support()
    sys.exit(main())
