import numpy as np
import pytest
import torch
from PIL import Image

from app.ml.preprocess import NothingDrawn, prepare
from tests.ml.drawing import draw_digit


def blur(img: np.ndarray) -> np.ndarray:
    """3x3 box blur: "nearly the same" should not hinge on a one-pixel shift of a thin stroke."""
    p = np.pad(img, 1)
    return sum(p[i:i + img.shape[0], j:j + img.shape[1]] for i in range(3) for j in range(3)) / 9.0


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = blur(a), blur(b)
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.mark.parametrize("digit", [1, 7, 0, 4, 3])
def test_small_in_a_corner_or_large_gives_nearly_the_same_input(digit):
    centred = prepare(draw_digit(digit)).image
    small_corner = prepare(draw_digit(digit, scale=0.35, offset=(5, 170))).image
    large = prepare(draw_digit(digit, size=560)).image  # the same drawing on a canvas twice as big
    assert similarity(centred, small_corner) > 0.85
    assert similarity(centred, large) > 0.95


def test_input_follows_mnist_layout():
    img = prepare(draw_digit(0)).image
    rows = np.flatnonzero(img.any(1))
    cols = np.flatnonzero(img.any(0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20  # fits a 20x20 box
    ys, xs = np.indices(img.shape)
    com = ((img * ys).sum() / img.sum(), (img * xs).sum() / img.sum())
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5
    assert img.max() == pytest.approx(1.0)
    assert img[0].max() == 0 and img[:, 0].max() == 0


def test_aspect_ratio_is_kept_not_stretched():
    img = prepare(draw_digit(1)).image  # a tall thin stroke stays tall and thin
    cols = np.flatnonzero(img.any(0))
    assert cols[-1] - cols[0] + 1 <= 4


def test_both_polarities_give_the_same_input():
    dark_on_light = prepare(draw_digit(7)).image
    light_on_dark = prepare(draw_digit(7, invert=True)).image
    np.testing.assert_allclose(dark_on_light, light_on_dark, atol=1e-5)


def test_grey_background_and_faint_ink():
    arr = np.asarray(draw_digit(4), dtype=np.float32) / 255.0
    faint = 0.55 + 0.2 * arr  # grey paper, pencil-faint ink
    assert similarity(prepare(faint).image, prepare(draw_digit(4)).image) > 0.97


@pytest.mark.parametrize("blank", [
    np.full((280, 280), 255, np.uint8),
    np.zeros((28, 28), np.float32),
    Image.new("RGBA", (100, 100), (0, 0, 0, 0)),
    np.full((50, 50, 3), 128, np.uint8),
])
def test_blank_image_is_nothing_drawn_not_a_guess(blank):
    with pytest.raises(NothingDrawn, match="nothing drawn"):
        prepare(blank)


def _inputs():
    img = draw_digit(7)
    arr = np.asarray(img)
    return {
        "PIL L": img,
        "PIL RGB": img.convert("RGB"),
        "PIL 1": img.convert("1"),
        "PIL I": img.convert("I"),
        "PIL RGBA transparent": Image.merge("RGBA", [Image.new("L", img.size, 0)] * 3 + [Image.eval(img, lambda v: 255 - v)]),
        "uint8 HxW": arr,
        "uint8 HxWx1": arr[..., None],
        "uint8 HxWx3": np.repeat(arr[..., None], 3, axis=2),
        "uint8 HxWx4": np.dstack([arr, arr, arr, np.full_like(arr, 255)]),
        "float 0..1": arr.astype(np.float64) / 255.0,
        "float 0..255": arr.astype(np.float32),
        "tensor HxW": torch.from_numpy(arr.copy()),
        "tensor 1xHxW float": torch.from_numpy(arr.astype(np.float32) / 255.0)[None],
    }


@pytest.mark.parametrize("name", list(_inputs()))
def test_every_supported_input_type(name):
    reference = prepare(draw_digit(7)).image
    assert similarity(prepare(_inputs()[name]).image, reference) > 0.97


@pytest.mark.parametrize("bad, message", [
    (np.zeros(10), "shape"),
    (np.zeros((2, 3, 28, 28)), "shape"),
    (np.zeros((0, 28)), "no pixels"),
    (np.full((28, 28), np.nan, np.float32), "NaN"),
    (np.array([["a", "b"], ["c", "d"]]), "dtype"),
    (-np.ones((28, 28), np.float32), "negative"),
    ("digit.png", "PIL image, a numpy array or a torch tensor"),
    (None, "PIL image, a numpy array or a torch tensor"),
])
def test_bad_input_gets_a_clear_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        prepare(bad)


def test_mnist_digits_pass_through_nearly_unchanged(mnist):
    images = mnist.test.images[:300]
    diffs = [np.abs(prepare(img).image - img / 255.0).mean() for img in images]
    assert np.mean(diffs) < 0.01
