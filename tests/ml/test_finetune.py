import uuid

import numpy as np
import pytest
import torch

from app.ml import MNISTPredictor
from app.ml.data import MNISTSplit
from app.ml.finetune import FinetuneConfig, decide, finetune, is_holdout, split
from app.ml.styles import restyle
from app.ml.train import TrainingCancelled
from tests.ml.drawing import draw_digit

FAST = FinetuneConfig(epochs=2, replay=2000)


def keys(n):
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


@pytest.fixture(scope="module")
def predictor(shipped_model_path):
    return MNISTPredictor(shipped_model_path)


def test_holdout_is_a_stable_fifth():
    ks = keys(2000)
    train_idx, hold_idx = split(ks)
    assert 0.17 < len(hold_idx) / 2000 < 0.23
    assert set(train_idx).isdisjoint(hold_idx)
    assert [is_holdout(k) for k in ks[:50]] == [is_holdout(k) for k in ks[:50]]


@pytest.mark.parametrize("before_after, kept, words", [
    ((99.5, 99.4, 80.0, 90.0), True, "kept"),
    ((99.5, 99.2, 80.0, 90.0), False, "fell by 0.30 points"),
    ((99.5, 99.5, 90.0, 90.0), False, "did not improve"),
    ((99.5, 99.6, 90.0, 85.0), False, "did not improve"),
])
def test_keep_rule(before_after, kept, words):
    ok, reason = decide(*before_after, max_drop=0.2)
    assert ok is kept and words in reason


def test_a_user_with_another_hand_gets_a_better_model(predictor, mnist):
    images = restyle(mnist.test.images[:200])
    labels = mnist.test.labels[:200]
    weights_before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    report = finetune(predictor.model, images, labels, keys(200), mnist, FAST,
                      mnist_eval=MNISTSplit(mnist.test.images[200:3000], mnist.test.labels[200:3000]))
    assert report.user_after > report.user_before
    assert report.kept == (report.mnist_drop <= 0.2)
    assert report.n_train + report.n_holdout == 200
    for k, v in predictor.model.state_dict().items():  # the base model is never touched
        assert torch.equal(v, weights_before[k])


def test_nothing_to_learn_is_not_kept(predictor, mnist):
    # Plain MNIST digits the model already gets right: held-out accuracy cannot improve.
    idx = np.arange(3000, 3400)
    images, labels = mnist.test.images[idx], mnist.test.labels[idx]
    right = np.array([r.digit for r in predictor.predict_batch(images)]) == labels
    report = finetune(predictor.model, images[right], labels[right], keys(int(right.sum())), mnist, FAST,
                      mnist_eval=MNISTSplit(mnist.test.images[:2000], mnist.test.labels[:2000]))
    assert report.user_before == 100.0
    assert not report.kept and "did not improve" in report.reason


def test_too_few_drawings_is_a_clear_error(predictor, mnist):
    with pytest.raises(ValueError, match="at least 20 labelled drawings"):
        finetune(predictor.model, mnist.test.images[:5], mnist.test.labels[:5], keys(5), mnist, FAST)


def test_cancel_leaves_the_base_model(predictor, mnist):
    before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    with pytest.raises(TrainingCancelled):
        finetune(predictor.model, mnist.test.images[:100], mnist.test.labels[:100], keys(100), mnist, FAST,
                 should_cancel=lambda: True)
    for k, v in predictor.model.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("method", ["gradient", "occlusion"])
def test_saliency_map_has_the_input_shape_and_is_finite(predictor, method):
    result, heat = predictor.explain(draw_digit(7), method)
    assert result.digit == 7
    assert heat.shape == (28, 28) and np.all(np.isfinite(heat))
    assert float(np.abs(heat).max()) == pytest.approx(1.0)
    image = result.image.astype(np.float32)
    # The evidence lies on the ink, not on the empty background.
    on_ink = np.abs(heat)[image > 0].sum()
    assert on_ink > 0.8 * np.abs(heat).sum() if method == "gradient" else on_ink > 0.5 * np.abs(heat).sum()


def test_unknown_explanation_method(predictor):
    with pytest.raises(ValueError, match="unknown explanation method"):
        predictor.explain(draw_digit(1), "magic")
