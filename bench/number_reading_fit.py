#!/usr/bin/env python
"""Fit the number reader's weights (``app.ml.segment.Weights``) on MNIST training digits.

Strings of 2-6 MNIST **training** digits are composed as ``bench/number_reading.py``
composes them (every gap class, both polarities), segmented, and every candidate piece
is read by the network once.  A random search over a grid of the weights, then a coordinate search that tries values
of each weight in turn, and keeps the one that reads the most strings exactly, until nothing improves.
Half of the strings are held out to report string accuracy before and after.

The test digits are never used here: ``bench/number_reading.py`` measures on them.
Prints the weights to write into ``app/ml/segment.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import number_reading as bench  # noqa: E402
from app.ml import MNISTPredictor, data, pieces, segment  # noqa: E402
from app.settings import Settings  # noqa: E402

FITTED = ("per_digit", "width", "gap", "short", "cut", "crossed", "narrow_cut", "whole")
GRID = {
    "per_digit": (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0),
    "width": (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0),
    "short": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0),
    "gap": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0),
    "cut": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    "crossed": (0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
    "narrow_cut": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    "whole": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
}


def build(predictor, split, n4: int, seed: int) -> list[dict]:
    """Composed strings -> what the fit needs: features, cut counts, the true text."""
    rng = np.random.default_rng(seed)
    zero = {"cut": 0.0, "crossed": 0.0, "narrow_cut": 0.0, "stroke_cut": 0.0}
    only = {name: dataclasses.replace(segment.DEFAULT_WEIGHTS, **{**zero, name: 1.0})
            for name in ("cut", "crossed", "narrow_cut")}
    samples = bench.make_samples(split, {n: (n4 if n == 4 else max(1, n4 // 4)) for n in bench.LENGTHS}, rng, False)
    out = []
    for (gap, _), group in samples.items():
        for sample in group:
            layout = segment.analyse(sample.picture, None, predictor.predict_prepared)
            cands = layout.candidates()
            preds, whole = segment.read_candidates(cands, predictor.predict_prepared, predictor.piece_scorer)
            out.append({"gap": gap, "text": sample.text, "n": len(layout.atoms),
                        "feats": np.array([segment.piece_features(layout, c, p, w)
                                           for c, p, w in zip(cands, preds, whole)]),
                        "digits": [str(p.digit) for p in preds],
                        "first": [c.first for c in cands], "last": [c.last for c in cands],
                        "cuts": {name: layout.cut_costs(w) for name, w in only.items()},
                        "marks": [a.mark for a in layout.atoms]})
    return out


def right(strings: list[dict], w: segment.Weights) -> dict[str, float]:
    pw = segment.piece_weights(w)
    hits: dict[str, list[bool]] = {}
    for d in strings:
        boundary = sum(getattr(w, name) * costs for name, costs in d["cuts"].items())
        chosen = segment.best_path(d["n"], d["first"], d["last"], d["feats"] @ pw, boundary, d["marks"], w.skip)
        hits.setdefault(d["gap"], []).append("".join(d["digits"][k] for k in chosen) == d["text"])
    return {g: 100.0 * float(np.mean(v)) for g, v in hits.items()}


def objective(acc: dict[str, float]) -> float:
    return float(np.mean(list(acc.values())))


def show(label: str, acc: dict[str, float]) -> None:
    print(f"{label}: " + "  ".join(f"{g} {a:.1f}" for g, a in acc.items()) + f"  (mean {objective(acc):.2f})",
          flush=True)


def reachable(d: dict) -> bool:
    """Whether some segmentation the candidates allow reads the true text (an upper bound)."""
    text = d["text"]
    fits = [[digit == t for t in text] for digit in d["digits"]]
    return pieces.run_exists(d["first"], d["last"], d["marks"], fits, len(text))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strings", type=int, default=150, help="4-digit strings per gap class (default 150)")
    p.add_argument("--seed", type=int, default=303)
    p.add_argument("--random", type=int, default=150, help="random points of the grid tried first (default 150)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--model-path", type=Path, default=None)
    p.add_argument("--pieces-path", type=Path, default=None, help="the piece network (default: the shipped one)")
    p.add_argument("--fit", nargs="+", choices=FITTED, default=list(FITTED), metavar="WEIGHT",
                   help=f"the weights to fit, the others kept (default: all of {', '.join(FITTED)})")
    args = p.parse_args()
    mnist = data.load_or_fetch(Settings.load(), args.data_dir)
    torch.set_num_threads(1)  # as bench/number_reading.py
    predictor = MNISTPredictor(args.model_path, pieces_path=args.pieces_path)
    start = time.perf_counter()
    fit = build(predictor, mnist.train, args.strings, args.seed)
    held = build(predictor, mnist.train, args.strings, args.seed + 1)
    print(f"{len(fit)} strings to fit, {len(held)} held out, from MNIST training digits "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    w = segment.DEFAULT_WEIGHTS
    show("held out, current weights", right(held, w))
    reach = {g: 100.0 * float(np.mean([reachable(d) for d in held if d["gap"] == g])) for g in bench.GAPS}
    show("held out, read right by some segmentation of the candidates", reach)
    best = objective(right(fit, w))
    show("fitted strings, current weights", right(fit, w))
    rng = np.random.default_rng(args.seed)
    fitted = [n for n in FITTED if n in args.fit]
    for _ in range(args.random):  # random points of the grid first, then one weight at a time
        trial = dataclasses.replace(w, **{n: float(rng.choice(GRID[n])) for n in fitted})
        score = objective(right(fit, trial))
        if score > best + 1e-9:
            best, w = score, trial
    show(f"best random point ({', '.join(f'{n}={getattr(w, n)}' for n in FITTED)})", right(fit, w))
    for _ in range(4):
        improved = False
        for name in fitted:
            for value in GRID[name]:
                trial = dataclasses.replace(w, **{name: value})
                score = objective(right(fit, trial))
                if score > best + 1e-9:
                    best, w, improved = score, trial, True
        show(f"fitted strings ({', '.join(f'{n}={getattr(w, n)}' for n in FITTED)})", right(fit, w))
        if not improved:
            break
    show("held out, new weights", right(held, w))
    print("fitted: " + ", ".join(f"{n}={getattr(w, n)}" for n in FITTED))
    return 0


if __name__ == "__main__":
    sys.exit(main())

