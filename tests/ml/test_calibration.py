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
