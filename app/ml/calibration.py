"""A confidence that means what it says, and "this is not a digit".

- **Temperature scaling** (Guo et al. 2017): one number T divides the network's logits so
  that, on held-out data, the confidence matches how often the answer is right.  Fitted
  after training on images the network was not trained on, and stored in the weights
  file's metadata (``calibration.temperature``).
- **Expected calibration error** (ECE, 15 equal-width bins) and the reliability diagram's
  bins, for *About this model*, the README and ``bench/robustness.py``.
- **The digit score**: how much an image looks like a digit the network knows.  The
  network is trained with outlier exposure (Hendrycks et al. 2019: letters, shapes and
  scribbles pushed towards equal probabilities), so its calibrated largest probability
  stays low for what is not a digit: that is the score (``msp``; the negative energy
  T * logsumexp(logits / T) of Liu et al. 2020 is available as ``energy``).  The threshold
  is chosen on held-out digits so that a share ``DIGIT_ACCEPT`` of them is accepted.

Plain numpy and torch; no Qt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BINS = 15
#: Share of held-out digits the "is a digit" threshold accepts.
DIGIT_ACCEPT = 0.995
#: The score new calibrations use: the calibrated largest probability.  (The energy score
#: is kept for files that name it: outlier exposure trains the probabilities, not the
#: logits' scale, so on a network with batch norm its tail of digits and its non-digits
#: overlap.)
DEFAULT_SCORE = "msp"


@dataclass(frozen=True)
class Calibration:
    """What the weights file's metadata["calibration"] holds."""

    temperature: float = 1.0
    digit_threshold: float | None = None  # digit_score below this: not a digit
    score: str = "msp"
    #: Knots (x, y) of a non-decreasing map from the tempered top probability to the share
    #: of answers right (isotonic regression on held-out digits); () for none.
    top_map: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "digit_threshold": self.digit_threshold,
                "score": self.score, "top_map": [list(k) for k in self.top_map]}

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: tempered softmax, then the top probability mapped to
        how often such answers are right, the nine others scaled to fill the rest (the
        best guess stays the best guess)."""
        p = softmax(logits, self.temperature)
        if not self.top_map:
            return p
        kx = np.array([k[0] for k in self.top_map])
        ky = np.array([k[1] for k in self.top_map])
        rows = np.arange(len(p))
        top = p.argmax(1)
        c = p[rows, top]
        q = p.copy()
        q[rows, top] = 0.0
        r = q.max(1)
        mapped = np.maximum(np.interp(c, kx, ky), r / np.maximum(1.0 - c + r, 1e-12))
        mapped = np.clip(mapped, 0.0, 1.0)
        rest = np.where(c < 1.0, (1.0 - mapped) / np.maximum(1.0 - c, 1e-12), 0.0)
        q *= rest[:, None]
        q[rows, top] = mapped
        return q / q.sum(1, keepdims=True)

    @classmethod
    def from_metadata(cls, metadata: dict | None) -> "Calibration":
        """Read (and check) metadata["calibration"]; a file without one is uncalibrated."""
        c = (metadata or {}).get("calibration")
        if not isinstance(c, dict):
            return cls()
        t = c.get("temperature", 1.0)
        th = c.get("digit_threshold")
        score = c.get("score", "msp")
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not (0.05 <= float(t) <= 20.0):
            raise ValueError(f"calibration temperature {t!r} is not a number between 0.05 and 20")
        if th is not None and (not isinstance(th, (int, float)) or isinstance(th, bool)
                               or not math.isfinite(float(th))):
            raise ValueError(f"digit threshold {th!r} is not a finite number")
        if score not in SCORES:
            raise ValueError(f"unknown digit score {score!r}; expected one of {', '.join(SCORES)}")
        return cls(float(t), None if th is None else float(th), score, _check_map(c.get("top_map") or ()))


def _check_map(knots) -> tuple[tuple[float, float], ...]:
    if not isinstance(knots, (list, tuple)) or len(knots) > 1000:
        raise ValueError("the confidence map is not a list of at most 1000 points")
    out = []
    for k in knots:
        if not (isinstance(k, (list, tuple)) and len(k) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in k)):
            raise ValueError(f"the confidence map has a point {k!r} that is not two numbers from 0 to 1")
        out.append((float(k[0]), float(k[1])))
    if any(b[0] < a[0] or b[1] < a[1] for a, b in zip(out, out[1:])):
        raise ValueError("the confidence map is not increasing")
    return tuple(out)


def fit_top_map(probabilities: np.ndarray, labels: np.ndarray, max_knots: int = 60) -> tuple[tuple[float, float], ...]:
    """Isotonic regression (pool adjacent violators) of "the answer is right" on the top
    probability: knots of a non-decreasing map, from (0, ...) to (1, ...)."""
    p = np.asarray(probabilities, np.float64)
    conf = p.max(1)
    right = (p.argmax(1) == np.asarray(labels)).astype(np.float64)
    order = np.argsort(conf, kind="stable")
    sums: list[list[float]] = []  # [sum right, count, sum conf] per block
    for x, y in zip(conf[order], right[order]):
        sums.append([y, 1.0, x])
        while len(sums) > 1 and sums[-2][0] * sums[-1][1] >= sums[-1][0] * sums[-2][1]:
            y2, n2, x2 = sums.pop()
            sums[-1][0] += y2
            sums[-1][1] += n2
            sums[-1][2] += x2
    kx = [b[2] / b[1] for b in sums]
    ky = [b[0] / b[1] for b in sums]
    if len(kx) > max_knots:  # keep the map small: merge neighbouring blocks, weights kept
        idx = np.array_split(np.arange(len(kx)), max_knots)
        w = np.array([b[1] for b in sums])
        kx = [float(np.average(np.take(kx, i), weights=w[i])) for i in idx]
        ky = [float(np.average(np.take(ky, i), weights=w[i])) for i in idx]
    knots = [(0.0, ky[0])] + [(float(x), float(y)) for x, y in zip(kx, ky)] + [(1.0, ky[-1])]
    return _check_map([(round(x, 6), round(y, 6)) for x, y in knots])


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """T * logsumexp(logits / T): high for what the network knows, low otherwise."""
    z = np.asarray(logits, np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    return temperature * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))


def msp_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The largest probability."""
    return softmax(logits, temperature).max(axis=1)


SCORES = {"energy": energy_score, "msp": msp_score}


def digit_score(logits: np.ndarray, calibration: Calibration) -> np.ndarray:
    return SCORES[calibration.score](logits, calibration.temperature)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels``."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)

    def nll(t: float) -> float:
        s = z / t
        m = s.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
        return float((lse - s[np.arange(len(y)), y]).mean())

    # NLL is unimodal in log T: golden-section search on [0.1, 10].
    lo, hi = math.log(0.1), math.log(10.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(math.exp(a)), nll(math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(math.exp(b))
    return float(math.exp((lo + hi) / 2))


def threshold_for(scores: np.ndarray, accept: float = DIGIT_ACCEPT) -> float:
    """The score above which a share ``accept`` of these (digit) scores lie."""
    return float(np.quantile(np.asarray(scores, np.float64), 1.0 - accept))


@dataclass(frozen=True)
class Reliability:
    """The reliability diagram: per confidence bin, how many, mean confidence, accuracy."""

    edges: np.ndarray  # (BINS + 1,)
    counts: np.ndarray  # (BINS,)
    confidence: np.ndarray  # (BINS,) mean confidence (nan where empty)
    accuracy: np.ndarray  # (BINS,) share right (nan where empty)
    ece: float  # expected calibration error, 0..1

    def to_dict(self) -> dict:
        def clean(a):
            return [None if not np.isfinite(v) else round(float(v), 5) for v in a]

        return {"edges": [round(float(e), 5) for e in self.edges], "counts": [int(c) for c in self.counts],
                "confidence": clean(self.confidence), "accuracy": clean(self.accuracy),
                "ece": round(float(self.ece), 6)}

    @classmethod
    def from_dict(cls, d: dict) -> "Reliability":
        def arr(v):
            return np.array([np.nan if x is None else float(x) for x in v])

        return cls(np.array(d["edges"], float), np.array(d["counts"], int), arr(d["confidence"]),
                   arr(d["accuracy"]), float(d["ece"]))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> Reliability:
    """Equal-width bins over [0, 1]; ECE = sum over bins of |accuracy - confidence| * share."""
    conf = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    ok_sum = np.bincount(idx, weights=ok.astype(float), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / counts, np.nan)
        acc = np.where(counts > 0, ok_sum / counts, np.nan)
    n = max(len(conf), 1)
    ece = float(np.nansum(np.abs(acc - mean_conf) * counts) / n)
    return Reliability(edges, counts, mean_conf, acc, ece)


def ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error (0..1) of the top-1 confidence."""
    p = np.asarray(probabilities)
    return reliability(p.max(axis=1), p.argmax(axis=1) == np.asarray(labels), bins).ece
