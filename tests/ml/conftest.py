from pathlib import Path

import pytest

from app.ml import data
from tests.conftest import mnist_dir  # noqa: F401 - one way to find MNIST; importable from here too

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return data.load(mnist_dir)


@pytest.fixture(scope="session")
def shipped_model_path() -> Path:
    path = REPO / "saved_models" / "mnist_classifier.pth"
    assert path.is_file(), "saved_models/mnist_classifier.pth is missing: run `make train`"
    return path
