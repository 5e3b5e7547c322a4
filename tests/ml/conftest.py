import os
from pathlib import Path

import pytest

from app.ml import data

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    candidates = [os.environ.get("MNIST_DIR"), REPO.parent / "shared" / "data" / "mnist"]
    for c in candidates:
        if c and not data.missing_files(Path(c)):
            return Path(c)
    pytest.fail("The MNIST files are needed: set MNIST_DIR or put them in ../shared/data/mnist")


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return data.load(mnist_dir)


@pytest.fixture(scope="session")
def shipped_model_path() -> Path:
    path = REPO / "saved_models" / "mnist_classifier.pth"
    assert path.is_file(), "saved_models/mnist_classifier.pth is missing: run `make train`"
    return path
