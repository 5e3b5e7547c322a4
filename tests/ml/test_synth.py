"""The synthetic handwriting generator (app/ml/synth.py, glyphs.py) and the sets built
from it (sources.py, devsets.py)."""

import numpy as np
import pytest

from app.ml import devsets, glyphs, sources, synth


@pytest.mark.parametrize("glyph", glyphs.digit_glyphs() + glyphs.nondigit_glyphs(), ids=lambda g: g.name)
def test_every_glyph_draws_a_centred_28x28_input(glyph):
    rng = np.random.default_rng(0)
    style = synth.WriterStyle.sample(3)
    for mode in synth.MODES:
        img, strokes, width = synth.draw(glyph, style, rng, mode)
        x = synth.to_input(img)
        assert x is not None and x.shape == (28, 28) and x.dtype == np.uint8
        ys, xs = np.nonzero(x)
        # MNIST framing: the ink fits a 20x20 box and its centre of mass is near the middle.
        assert np.ptp(ys) <= 20 and np.ptp(xs) <= 20
        w = x[ys, xs].astype(float)
        assert abs(np.average(ys, weights=w) - 14) < 2.5 and abs(np.average(xs, weights=w) - 14) < 2.5
        assert width > 0 and all(len(s) >= 1 for s in strokes)


def test_few_points_mode_delivers_few_points_with_corners():
    rng = np.random.default_rng(1)
    style = synth.WriterStyle.sample(11)
    g = next(g for g in glyphs.digit_glyphs() if g.name == "4_open")
    for _ in range(20):
        strokes = synth.pen_strokes(g, style, rng)
        got, _ = synth.acquire(strokes, "few_points", rng)
        assert 6 <= sum(len(s) for s in got) <= 18


def test_writer_styles_are_reproducible_and_writer_sets_are_apart():
    a, b, c = synth.WriterStyle.sample(42), synth.WriterStyle.sample(42), synth.WriterStyle.sample(43)
    assert repr(a) == repr(b) and np.array_equal(a.modes, b.modes)
    assert (a.slant, a.pen, a.aspect) != (c.slant, c.pen, c.aspect)
    train, dev, cal = synth.TRAIN_WRITERS, synth.DEV_WRITERS, sources.CALIBRATION_WRITERS
    for a, b in ((train, dev), (train, cal), (cal, dev)):
        assert a.stop <= b.start or b.stop <= a.start


def test_sets_are_deterministic_and_labelled():
    a = synth.digits(60, seed=5)
    b = synth.digits(60, seed=5)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert set(a.labels) <= set(range(10)) and len(set(a.labels)) > 5
    assert all(k.startswith(f"{d}_") for k, d in zip(a.kinds, a.labels))
    assert all(w in synth.TRAIN_WRITERS for w in a.writers)
    dev = synth.digits(30, seed=5, writers=synth.DEV_WRITERS)
    assert all(w in synth.DEV_WRITERS for w in dev.writers)


def test_nondigits_cover_every_kind_and_are_labelled_minus_one():
    fonts = sources.training_fonts()
    assert fonts, "resources/fonts must hold the training fonts"
    s = synth.nondigits(300, seed=2, fonts=fonts + ["<default>"])
    assert (s.labels == -1).all()
    kinds = {k.split("_")[0] for k in s.kinds}
    assert {"letter", "typed", "shape", "scribble", "crossed", "two"} <= kinds
    assert not any(k in ("letter_O", "letter_I", "letter_l", "letter_Z", "letter_S") for k in s.kinds)


def test_the_bank_is_cached_and_read_back(tmp_path):
    a = sources.bank("digits", 50, seed=3, cache_dir=tmp_path, workers=1)
    files = list(tmp_path.glob("digits-*.npz"))
    assert len(files) == 1
    b = sources.bank("digits", 50, seed=3, cache_dir=tmp_path, workers=1)
    assert np.array_equal(a.images, b.images)
    files[0].write_bytes(b"damaged")
    c = sources.bank("digits", 50, seed=3, cache_dir=tmp_path, workers=1)
    assert np.array_equal(a.images, c.images)


def test_validation_split_is_fixed_and_disjoint(mnist):
    train, val = sources.split_validation(mnist.train)
    assert len(val) == sources.VALIDATION_SIZE and len(train) + len(val) == len(mnist.train)
    train2, val2 = sources.split_validation(mnist.train)
    assert np.array_equal(val.images, val2.images)
    # No validation image is among the training images (compare raw bytes of a sample).
    seen = {img.tobytes() for img in train.images[:20000]}
    assert sum(img.tobytes() in seen for img in val.images) < 5  # MNIST has a few exact duplicates


def test_scanned_dev_set_looks_like_a_low_resolution_scan(mnist):
    _, val = sources.split_validation(mnist.train)
    s = devsets.scanned(val, n=50)
    assert len(s) >= 48 and set(s.labels) <= set(range(10))
    # The 16x16 round trip leaves broad strokes: more ink than MNIST's own digits.
    assert (s.images > 128).mean() > (val.images[:50] > 128).mean()
