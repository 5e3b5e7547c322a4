"""``import app.ml`` and its errors need no torch: a process where torch cannot be
imported still imports them, and catches them by class."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCK_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoTorch())
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_the_block_works():
    out = run("import torch")
    assert out.returncode != 0 and "torch is blocked" in out.stderr


def test_app_ml_and_its_errors_import_without_torch():
    out = run("""
import app.ml
from app.ml import data, preprocess
from app.ml.errors import MNISTError, ModelFileError, NothingDrawn, TrainingCancelled
assert app.ml.NothingDrawn is NothingDrawn is preprocess.NothingDrawn
assert app.ml.MNISTError is MNISTError is data.MNISTError
assert issubclass(NothingDrawn, ValueError)
try:
    preprocess.prepare(__import__("numpy").full((50, 50), 255, "uint8"))
except NothingDrawn as exc:
    print("caught", type(exc).__name__)
try:
    app.ml.MNISTPredictor
except ImportError as exc:
    print("predictor needs torch:", exc)
assert "torch" not in sys.modules
""")
    assert out.returncode == 0, out.stderr
    assert "caught NothingDrawn" in out.stdout
    assert "predictor needs torch: torch is blocked" in out.stdout


def test_the_errors_are_the_ones_the_torch_modules_raise():
    from app.ml import checkpoint, data, errors, preprocess, train

    assert checkpoint.ModelFileError is errors.ModelFileError
    assert train.TrainingCancelled is errors.TrainingCancelled
    assert data.MNISTError is errors.MNISTError
    assert preprocess.NothingDrawn is errors.NothingDrawn
