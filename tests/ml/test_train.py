import pytest
import torch

from app.ml import checkpoint
from app.ml.train import TrainConfig, TrainingCancelled, augment, save_result, train


def small(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=64, learning_rate=0.006, train_limit=3000, test_limit=1000, use_cuda=False)
    base.update(kw)
    return TrainConfig(**base)


def test_a_short_real_run_learns_and_reports_progress(mnist, tmp_path):
    reports = []
    result = train(small(), mnist, progress=reports.append)
    assert [h.epoch for h in result.history] == [1, 2]
    assert result.history[0].test_accuracy > 60.0  # from 10 % (chance) after one short epoch
    assert result.history[-1].test_accuracy > 88.0
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert reports[-1].fraction == pytest.approx(1.0) and reports[-1].epoch_stats is result.history[-1]
    assert all(r.eta >= 0 for r in reports)
    sha = save_result(result, mnist, tmp_path / "m.pth")
    loaded = checkpoint.load(tmp_path / "m.pth")
    assert loaded.sha256 == sha
    assert loaded.metadata["train_samples"] == 3000 and loaded.metadata["seed"] == 1
    assert loaded.metadata["test_accuracy"] == pytest.approx(result.test_accuracy, abs=1e-3)
    assert loaded.metadata["data_md5"]["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"


@pytest.mark.parametrize("images", [64, 256, 320, 512])
def test_runs_of_very_few_batches_train(mnist, images):
    """1, 4, 5 and 8 batches in all: the one-cycle schedule's warm-up is then under two steps."""
    result = train(small(epochs=1, train_limit=images, test_limit=200), mnist)
    assert len(result.history) == 1 and result.history[0].train_loss > 0


def test_same_seed_same_result(mnist):
    a = train(small(epochs=1, train_limit=1000, test_limit=500), mnist)
    b = train(small(epochs=1, train_limit=1000, test_limit=500), mnist)
    assert a.history[0].train_loss == b.history[0].train_loss
    c = train(small(epochs=1, train_limit=1000, test_limit=500, seed=2), mnist)
    assert c.history[0].train_loss != a.history[0].train_loss


def test_cancel_between_batches(mnist):
    calls = []

    def cancel_after_five():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(TrainingCancelled):
        train(small(), mnist, should_cancel=cancel_after_five)
    assert len(calls) == 6


def test_target_accuracy_stops_early(mnist):
    result = train(small(epochs=5, target_accuracy=50.0), mnist)
    assert len(result.history) == 1


def test_bad_settings_are_refused():
    for bad in (dict(epochs=0), dict(batch_size=0), dict(learning_rate=-1.0), dict(learning_rate=float("nan"))):
        with pytest.raises(ValueError):
            TrainConfig(**bad).validate()


def test_augmentation_keeps_digits_recognisable_but_different(mnist):
    x = torch.from_numpy(mnist.test.images[:256].copy()).float().div(255).unsqueeze(1)
    gen = torch.Generator().manual_seed(0)
    y = augment(x, gen)
    assert y.shape == x.shape and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    changed = (y - x).abs().flatten(1).mean(1)
    assert float((changed > 0.01).float().mean()) > 0.9
    ink_ratio = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert 0.4 < float(ink_ratio.min()) and float(ink_ratio.max()) < 3.0  # thinner and thicker, never erased
