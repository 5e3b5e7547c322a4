"""Learning from the user, end to end: drawings logged in a real database, fine-tuning,
the keep rule, model versions, dataset export and ``run_model.py --mode finetune``."""

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from app import learn
from app.db import PredictionRecord, PredictionRepository
from app.ml import MNISTPredictor, checkpoint
from app.ml.data import MNISTSplit, read_idx
from app.ml.finetune import FinetuneConfig
from app.ml.styles import restyle
from tests.ml.conftest import mnist, mnist_dir, shipped_model_path  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
FAST = FinetuneConfig(epochs=2, replay=3000)


def log_user_drawings(repo, predictor, images, labels):
    for i, (pred, label) in enumerate(zip(predictor.predict_batch(images), labels)):
        repo.log(PredictionRecord(uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-drawing-{i}")),
                                  predicted_digit=pred.digit, confidence=pred.confidence,
                                  probabilities=list(pred.probabilities), image_png=learn.array_to_png(pred.image),
                                  true_label=int(label)))


@pytest.fixture
def repo(db_url, tmp_path):
    r = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    yield r
    r.close()


def test_improve_keeps_a_better_model_and_records_its_version(repo, mnist, shipped_model_path, tmp_path):
    predictor = MNISTPredictor(shipped_model_path)
    base_id = repo.register_model_version(sha256=predictor.loaded.sha256, path=str(shipped_model_path),
                                          arch="mnist_cnn", metrics={"test_accuracy": 99.5}, kind="shipped")
    log_user_drawings(repo, predictor, restyle(mnist.test.images[:200]), mnist.test.labels[:200])
    dataset = learn.user_dataset(repo)
    assert len(dataset) == 200 and dataset.images.shape == (200, 28, 28)
    outcome = learn.improve(predictor.loaded, dataset, mnist, tmp_path / "models", FAST,
                            mnist_eval=MNISTSplit(mnist.test.images[200:2200], mnist.test.labels[200:2200]))
    r = outcome.report
    assert r.user_after > r.user_before
    if not r.kept:  # the rule may refuse it on MNIST; then nothing is written
        assert outcome.path is None and "MNIST" in r.reason
        return
    loaded = checkpoint.load(outcome.path)
    assert loaded.sha256 == outcome.sha256 and loaded.metadata == outcome.metadata
    assert loaded.metadata["kind"] == "fine-tuned" and loaded.metadata["parent_sha256"] == predictor.loaded.sha256
    assert repo.model_version_by_sha(outcome.sha256) is None  # improve() records nothing itself
    version_id = learn.register_version(repo, outcome.path, outcome.sha256, loaded.arch, outcome.metadata,
                                        parent_sha=predictor.loaded.sha256, kind="fine-tuned")
    version = repo.model_version_by_sha(outcome.sha256)
    assert version.id == version_id
    assert version.parent_id == base_id and version.kind == "fine-tuned" and version.sha256 == outcome.sha256
    assert version.metrics["finetune"]["user_after"] == pytest.approx(r.user_after)


def test_not_enough_drawings(repo, mnist, shipped_model_path, tmp_path):
    predictor = MNISTPredictor(shipped_model_path)
    log_user_drawings(repo, predictor, mnist.test.images[:5], mnist.test.labels[:5])
    with pytest.raises(ValueError, match="at least 20"):
        learn.improve(predictor.loaded, learn.user_dataset(repo), mnist, tmp_path, FAST)


@pytest.mark.parametrize("name", ["mine.npz", "mine", "mine.gz"])
def test_export_dataset(repo, mnist, shipped_model_path, tmp_path, name):
    predictor = MNISTPredictor(shipped_model_path)
    log_user_drawings(repo, predictor, mnist.test.images[:12], mnist.test.labels[:12])
    assert learn.export_dataset(repo, tmp_path / name) == 12
    expected = np.stack([r.image for r in predictor.predict_batch(mnist.test.images[:12])])
    if name.endswith(".npz"):
        got = np.load(tmp_path / name)
        images, labels = got["images"], got["labels"]
        assert len(got["uuids"]) == 12
    else:
        gz = ".gz" if name.endswith(".gz") else ""
        images = read_idx(tmp_path / f"mine-images-idx3-ubyte{gz}")
        labels = read_idx(tmp_path / f"mine-labels-idx1-ubyte{gz}")
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, mnist.test.labels[:12])


def test_cli_finetune(repo, db_url, mnist, mnist_dir, shipped_model_path, tmp_path):
    predictor = MNISTPredictor(shipped_model_path)
    log_user_drawings(repo, predictor, restyle(mnist.test.images[:60]), mnist.test.labels[:60])
    env = {"DATABASE_URL": db_url, "MNIST_DIR": str(mnist_dir), "MNIST_DATA_HOME": str(tmp_path / "home"),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(REPO / "run_model.py"), "--mode", "finetune", "--epochs", "1", "-q"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "60 labelled drawings" in out.stdout
    assert "your held-out drawings" in out.stdout and ("kept" in out.stdout)
    if "Saved the fine-tuned model" in out.stdout:  # kept: recorded as a child of nothing known
        assert [v.kind for v in repo.model_versions()] == ["fine-tuned"]
    else:
        assert repo.model_versions() == []
