"""Temperature scaling, the calibration error, the digit score (app/ml/calibration.py)."""

import numpy as np
import pytest

from app.ml import calibration as cal


def _overconfident(n=20000, seed=0):
    """Logits of a 10-class problem whose true temperature is 3: dividing by 3 calibrates."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (n, 10)) * 2.0
    probs = cal.softmax(base)
    labels = np.array([rng.choice(10, p=p) for p in probs])
    return base * 3.0, labels


def test_fit_temperature_recovers_the_temperature_that_calibrates():
    logits, labels = _overconfident()
    t = cal.fit_temperature(logits, labels)
    assert 2.7 < t < 3.3
    before = cal.ece(cal.softmax(logits), labels)
    after = cal.ece(cal.softmax(logits, t), labels)
    assert after < before / 3
    assert after < 0.02


def test_reliability_bins_and_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 1, 1, 0, 1, 0], bool)
    r = cal.reliability(conf, correct)
    assert r.counts.sum() == 6 and len(r.counts) == cal.BINS
    hi = np.flatnonzero(r.counts == 4)[0]
    assert r.accuracy[hi] == pytest.approx(0.75) and r.confidence[hi] == pytest.approx(0.95)
    # |0.75 - 0.95| * 4/6 + |0.5 - 0.55| * 2/6
    assert r.ece == pytest.approx(0.2 * 4 / 6 + 0.05 * 2 / 6)
    again = cal.Reliability.from_dict(r.to_dict())
    assert again.ece == pytest.approx(r.ece) and list(again.counts) == list(r.counts)


def test_threshold_accepts_the_asked_share():
    scores = np.random.default_rng(1).normal(size=10000)
    th = cal.threshold_for(scores, 0.99)
    assert (scores >= th).mean() == pytest.approx(0.99, abs=0.002)


def test_energy_score_is_high_for_a_confident_answer_and_low_for_a_flat_one():
    sure = np.array([[12.0] + [0.0] * 9])
    flat = np.zeros((1, 10))
    assert cal.energy_score(sure)[0] > cal.energy_score(flat)[0] + 9


@pytest.mark.parametrize("bad", [{"temperature": "hot"}, {"temperature": 0.0}, {"temperature": 1e9},
                                 {"temperature": 1.0, "digit_threshold": float("nan")},
                                 {"temperature": 1.0, "digit_threshold": [1]},
                                 {"temperature": 1.0, "score": "vibes"}])
def test_bad_calibration_metadata_is_refused(bad):
    with pytest.raises(ValueError):
        cal.Calibration.from_metadata({"calibration": bad})


def test_a_file_without_calibration_reads_as_uncalibrated():
    c = cal.Calibration.from_metadata({"epochs": 3})
    assert c.temperature == 1.0 and c.digit_threshold is None


def test_the_top_map_fixes_what_one_temperature_cannot():
    """Answers that are right more often than their confidence at the low end and less
    often at the high end: no temperature fits both, the isotonic map does."""
    rng = np.random.default_rng(3)
    n = 20000
    conf = rng.uniform(0.15, 1.0, n)
    truth = np.where(conf < 0.6, 0.5 + conf / 2, conf - 0.05).clip(0, 1)  # how often such answers are right
    right = rng.random(n) < truth
    logits = np.zeros((n, 10))
    logits[:, 0] = np.log(conf * 9 / (1 - conf + 1e-9) + 1e-9)  # softmax top = conf
    labels = np.where(right, 0, 1)
    c = cal.Calibration(1.0, None, "msp", cal.fit_top_map(cal.softmax(logits), labels))
    p = c.probabilities(logits)
    assert np.allclose(p.sum(1), 1.0) and (p.argmax(1) == 0).all()  # the best guess stays
    before = cal.ece(cal.softmax(logits), labels)
    after = cal.ece(p, labels)
    assert before > 0.04 and after < 0.015
    xs = [k[0] for k in c.top_map]
    ys = [k[1] for k in c.top_map]
    assert xs == sorted(xs) and ys == sorted(ys) and xs[0] == 0.0 and xs[-1] == 1.0
    again = cal.Calibration.from_metadata({"calibration": c.to_dict()})
    assert np.allclose(again.probabilities(logits), p)


@pytest.mark.parametrize("bad", [[[0.5, 0.4], [0.4, 0.5]], [[0, 2]], "a map", [[0.1, 0.2, 0.3]]])
def test_a_bad_top_map_is_refused(bad):
    with pytest.raises(ValueError, match="confidence map"):
        cal.Calibration.from_metadata({"calibration": {"temperature": 1.0, "top_map": bad}})
