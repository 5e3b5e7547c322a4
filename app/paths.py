"""Where the application's files live: bundled resources and per-user data.

Bundled files (shipped weights, ``sql/``, ``resources/``) sit next to the code in a
checkout and inside ``sys._MEIPASS`` in a PyInstaller build.  Per-user data (MNIST
download, the embedded database, the offline spool, trained weights) lives in the
platform's user data folder from platformdirs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "mnist-classifier"
APP_AUTHOR = "mnist-classifier"


def resource_root() -> Path:
    """The folder that holds ``sql/``, ``resources/`` and ``saved_models/``."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    return Path(__file__).resolve().parent.parent


#: The product's network (the fixed CNN): ``run_model.py``'s default.
PRODUCT_MODEL = "mnist_classifier.pth"
#: The wider network that reads unfamiliar handwriting better and says "not a digit"
#: more often: the app's and ``MNISTPredictor()``'s default when it is shipped.
ROBUST_MODEL = "mnist_robust.pth"


def product_model_path() -> Path:
    """The shipped weights of the product's network."""
    return resource_root() / "saved_models" / PRODUCT_MODEL


def shipped_model_paths() -> list[Path]:
    """Every shipped weights file, the default first."""
    return [resource_root() / "saved_models" / name for name in (ROBUST_MODEL, PRODUCT_MODEL)]


def bundled_model_path() -> Path:
    """The weights the app and ``MNISTPredictor()`` load by default: the wider network
    when it is shipped, else the product's network."""
    robust, product = shipped_model_paths()
    return robust if robust.is_file() else product


def sql_dir() -> Path:
    return resource_root() / "sql"


def resources_dir() -> Path:
    return resource_root() / "resources"


def default_user_data_dir() -> Path:
    """The per-user data folder.  For root on Linux it is /var/lib/mnist-classifier: the
    embedded PostgreSQL server runs as a separate system user there and needs every folder
    above its data to be traversable, which must not open up /root."""
    if sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib") / APP_NAME
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


#: The number reader's second opinion on the pieces it cuts (``app.ml.pieces``); not a
#: digit model, so not among ``shipped_model_paths``.
PIECES_MODEL = "mnist_pieces.pth"


def pieces_model_path() -> Path:
    return resource_root() / "saved_models" / PIECES_MODEL
