"""The shipped models on the project's own development sets: handwriting none of them was
trained on (app/ml/devsets.py).  The floors are set from measurement (bench/robustness.py
with 60 drawings per form; here 30, so each floor leaves room for the smaller sample) and
catch a model that forgot a form of a digit, or stopped saying "not a digit"."""

import collections

import numpy as np
import pytest

from app import paths
from app.ml import calibration as cal
from app.ml import checkpoint, devsets, glyphs, sources
from app.ml.train import logits_of

#: Forms people write that MNIST has few of; a flagged 1 is easily taken for a 7 and
#: stays the hardest (measured 73–78 % for both models).
HARD_FORMS = {"1_flag": 0.55, "1_curved_flag": 0.55}
FORM_FLOOR = 0.8
SET_FLOOR = {"mnist_cnn": 0.955, "wide": 0.96}
#: Scanned-like digits: measured 97.9 % (product) and 98.55 % (wide) on 2 000.
SCANNED_FLOOR = {"mnist_cnn": 0.965, "wide": 0.975}


@pytest.fixture(scope="module")
def allographs():
    return devsets.allographs(per_glyph=30, seed=21)


@pytest.fixture(scope="module", params=[paths.PRODUCT_MODEL, paths.ROBUST_MODEL])
def shipped(request):
    path = paths.resource_root() / "saved_models" / request.param
    assert path.is_file(), f"{path} is missing: run `make train`"
    loaded = checkpoint.load(path)
    return loaded, cal.Calibration.from_metadata(loaded.metadata)


def _answers(shipped, images):
    loaded, c = shipped
    logits = logits_of(loaded.model, images)
    return c.probabilities(logits).argmax(1), cal.digit_score(logits, c) >= c.digit_threshold


def test_every_form_of_every_digit_is_read(shipped, allographs):
    pred, _ = _answers(shipped, allographs.images)
    ok = pred == allographs.labels
    assert ok.mean() >= SET_FLOOR[shipped[0].arch], ok.mean()
    by_form = collections.defaultdict(list)
    for kind, right in zip(allographs.kinds, ok):
        by_form[kind].append(right)
    assert set(by_form) == {g.name for g in glyphs.digit_glyphs()}
    weak = {k: round(float(np.mean(v)), 3) for k, v in by_form.items() if np.mean(v) < HARD_FORMS.get(k, FORM_FLOOR)}
    assert not weak, weak


def test_digits_by_unseen_writers_are_accepted_as_digits(shipped, allographs):
    _, accepted = _answers(shipped, allographs.images)
    assert accepted.mean() >= 0.97, accepted.mean()


def test_scanned_like_digits_are_read_and_accepted(shipped, mnist):
    _, validation = sources.split_validation(mnist.train)
    s = devsets.scanned(validation, n=1000, seed=22)
    pred, accepted = _answers(shipped, s.images)
    assert (pred == s.labels).mean() >= SCANNED_FLOOR[shipped[0].arch]
    assert accepted.mean() >= 0.96


def test_the_default_model_says_not_a_digit_for_letters_and_marks():
    loaded = checkpoint.load(paths.bundled_model_path())
    c = cal.Calibration.from_metadata(loaded.metadata)
    letters = devsets.letters(600, seed=23)
    _, accepted = _answers((loaded, c), letters.images)
    # Letters written like a digit (O, l, I, Z, S, b, g, q) may pass: a person hesitates too.
    lookalike = np.array([k.removeprefix("letter_") in glyphs.LOOKALIKE_LETTERS for k in letters.kinds])
    assert (~accepted[~lookalike]).mean() >= 0.9, (~accepted[~lookalike]).mean()
    assert (~accepted).mean() >= 0.75
    marks = devsets.marks(400, seed=24)
    _, accepted = _answers((loaded, c), marks.images)
    assert (~accepted).mean() >= 0.9
