import threading

import numpy as np
import pytest
import torch
from PIL import Image

from app import paths
from app.ml import MNISTPredictor, ModelFileError, NothingDrawn
from app.ml.train import evaluate, to_tensors
from tests.ml.drawing import draw_digit


@pytest.fixture(scope="module")
def predictor(shipped_model_path):
    """The default model: the app's and ``MNISTPredictor()``'s."""
    return MNISTPredictor()


@pytest.fixture(scope="module")
def product(shipped_model_path):
    """The product's network, shipped beside it."""
    return MNISTPredictor(shipped_model_path)


def _test_accuracy(predictor, mnist) -> float:
    x, y = to_tensors(mnist.test.images, mnist.test.labels, torch.device("cpu"))
    _, correct, n = evaluate(predictor.model, x, y)
    assert n == 10000
    return correct / n


def test_the_shipped_product_network_keeps_at_least_99_35_percent(product, mnist):
    assert product.arch == "mnist_cnn"
    assert _test_accuracy(product, mnist) >= 0.9935
    # Trained on MNIST's training set less the 5 000 images held out to calibrate on.
    assert product.metadata["train_samples"] == 55000
    assert product.metadata["training_data"]["validation"] == 5000
    assert product.calibration.digit_threshold is not None


def test_the_default_model_is_the_wider_calibrated_network(predictor, mnist):
    assert predictor.model_path == paths.bundled_model_path()
    assert predictor.arch == "wide" and predictor.model_path.name == paths.ROBUST_MODEL
    assert _test_accuracy(predictor, mnist) >= 0.9935
    assert predictor.metadata["training_data"]["non_digits"] > 0
    assert predictor.calibration.digit_threshold is not None


def test_through_the_preprocessing_mnist_digits_stay_right(predictor, mnist):
    results = predictor.predict_batch(mnist.test.images[:1000])
    accuracy = np.mean([r.digit == label for r, label in zip(results, mnist.test.labels[:1000])])
    assert accuracy >= 0.985


@pytest.mark.parametrize("digit", [0, 1, 3, 4, 7])
def test_drawn_digits(predictor, digit):
    for variant in (draw_digit(digit), draw_digit(digit, scale=0.4, offset=(150, 10)), draw_digit(digit, width=34)):
        assert predictor.predict(variant).digit == digit


def test_result_shape(predictor):
    r = predictor.predict(draw_digit(7))
    assert isinstance(r.digit, int) and isinstance(r.confidence, float)
    assert len(r.probabilities) == 10 and sum(r.probabilities) == pytest.approx(1.0, abs=1e-9)
    assert r.confidence == max(r.probabilities) == r.probabilities[r.digit]
    assert r.image.shape == (28, 28) and r.image.dtype == np.uint8
    second, p2 = r.runner_up
    assert second != r.digit and p2 <= r.confidence


def test_pil_numpy_and_tensor_agree(predictor):
    img = draw_digit(4)
    arr = np.asarray(img)
    outs = [predictor.predict(img), predictor.predict(arr), predictor.predict(torch.from_numpy(arr.copy())),
            predictor.predict(img.convert("RGBA")), predictor.predict(arr.astype(np.float32) / 255)]
    for o in outs[1:]:
        np.testing.assert_allclose(o.probabilities, outs[0].probabilities, atol=1e-6)


def test_predict_batch_list_and_array(predictor, mnist):
    arr = mnist.test.images[:8]
    as_array = predictor.predict_batch(arr)
    as_list = predictor.predict_batch([Image.fromarray(a) for a in arr])
    assert [r.digit for r in as_array] == [r.digit for r in as_list] == list(mnist.test.labels[:8])
    assert predictor.predict_batch([]) == []


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5,)), "shape"),
    (np.full((28, 28), np.nan), "NaN"),
    (np.zeros((0, 0)), "no pixels"),
    (np.ones((28, 28, 7)), "shape"),
    ([1, 2, 3], "PIL image, a numpy array or a torch tensor"),
])
def test_bad_input_is_a_clear_value_error(predictor, bad, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(bad)


def test_empty_canvas_is_nothing_drawn(predictor):
    with pytest.raises(NothingDrawn):
        predictor.predict(Image.new("L", (280, 280), 255))


def test_batch_of_wrong_rank(predictor):
    with pytest.raises(ValueError, match="N x H x W"):
        predictor.predict_batch(np.zeros((28, 28)))


def test_safe_from_several_threads(predictor, mnist):
    images = mnist.test.images[:64]
    expected = [r.probabilities for r in predictor.predict_batch(images)]
    errors, outputs = [], {}

    def work(k):
        try:
            outputs[k] = [predictor.predict(img).probabilities for img in images]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in outputs.values():
        np.testing.assert_allclose(out, expected, atol=1e-6)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        MNISTPredictor(tmp_path / "missing.pth")


def test_the_tuple_form_of_the_product_description(predictor):
    digit, confidence, probabilities = predictor.predict(draw_digit(3))
    assert digit == 3 and confidence == max(probabilities) and len(probabilities) == 10


def _letter(ch: str, size: int = 280) -> Image.Image:
    from PIL import ImageDraw, ImageFont

    from app.ml.sources import training_fonts

    img = Image.new("L", (size, size), 255)
    font = ImageFont.truetype(str(training_fonts()[0]), int(size * 0.7))
    ImageDraw.Draw(img).text((size * 0.2, size * 0.05), ch, fill=0, font=font)
    return img


def _scribble(seed: int, size: int = 280) -> Image.Image:
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.new("L", (size, size), 255)
    pts = [tuple(map(float, p)) for p in rng.uniform(30, size - 30, (14, 2))]
    ImageDraw.Draw(img).line(pts, fill=0, width=16, joint="curve")
    return img


def test_drawn_digits_are_digits(predictor):
    for d in (0, 1, 3, 4, 7):
        r = predictor.predict(draw_digit(d))
        assert r.digit == d and r.is_digit, (d, r.digit_score)


def test_typed_letters_and_scribbles_are_not_digits(predictor):
    letters = [predictor.predict(_letter(ch)) for ch in "AKMWXYkmwx#"]
    assert sum(not r.is_digit for r in letters) >= len(letters) - 1, [r.digit_score for r in letters]
    scribbles = [predictor.predict(_scribble(s)) for s in range(6)]
    assert sum(not r.is_digit for r in scribbles) >= 5, [r.digit_score for r in scribbles]
    # Still a best guess with probabilities, as for any image.
    assert all(len(r.probabilities) == 10 and 0 <= r.digit <= 9 for r in letters + scribbles)


def test_a_blank_ish_canvas_is_not_a_digit(predictor):
    dot = Image.new("L", (280, 280), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(dot).ellipse((130, 130, 146, 146), fill=0)  # one touch of the pen
    assert not predictor.predict(dot).is_digit
