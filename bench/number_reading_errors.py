#!/usr/bin/env python
"""Why the number reader misreads touching and overlapping digits.

Four-digit strings of the MNIST **training** digits the piece network never learnt from
(the last ``app.ml.pieces.VALIDATION_DIGITS``) are composed as ``bench/number_reading.py``
composes them, touching and overlapping, and read.  Each string read wrong is put in one
of three groups, from whose ink each candidate piece holds (``pieces.label_pieces``):

- **cuts**: no run of candidates gives each digit its own ink (each holds at least 85 %
  of one digit's ink, under 15 % of any other's, in the right order).  The cut paths are
  to blame: better reading cannot help.
- **misread**: such a run exists, but in every one some piece is read as another digit.
- **misscored**: such a run is also read right, but the reader chose another reading.

The test digits are never used here.  Last line:
``read_right=… cuts=… misread=… misscored=…`` (percent of the strings).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from app.ml import MNISTPredictor, data, pieces, segment, strings  # noqa: E402
from app.settings import Settings  # noqa: E402

GAPS = ("touching", "overlapping")
GROUPS = ("cuts", "misread", "misscored")


def diagnose(predictor: MNISTPredictor, picture: np.ndarray, own: np.ndarray, digits: list[int]) -> str:
    """'right', or the group of a misreading (``GROUPS``)."""
    layout = segment.analyse(picture, None, predictor.predict_prepared)
    cands = layout.candidates()
    preds, whole = segment.read_candidates(cands, predictor.predict_prepared, predictor.piece_scorer)
    feats = np.array([segment.piece_features(layout, c, p, w) for c, p, w in zip(cands, preds, whole)])
    w = segment.DEFAULT_WEIGHTS
    chosen = segment.choose(layout, cands, feats @ segment.piece_weights(w), w)
    if [preds[k].digit for k in chosen] == digits:
        return "right"
    labels = pieces.label_pieces(layout, cands, pieces.owners_on(layout, own), digits)
    if not pieces.run_exists(*pieces.spans(layout, cands), [[lab == d for d in digits] for lab in labels], len(digits)):
        return "cuts"
    read = [[lab == d and p.digit == d for d in digits] for lab, p in zip(labels, preds)]
    return "misscored" if pieces.run_exists(*pieces.spans(layout, cands), read, len(digits)) else "misread"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strings", type=int, default=150, help="4-digit strings per gap class (default 150)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--model-path", type=Path, default=None)
    p.add_argument("--pieces-path", type=Path, default=None, help="the piece network (default: the shipped one)")
    p.add_argument("--list", action="store_true", help="print each string read wrong and its group")
    args = p.parse_args()
    if args.strings < 1:
        p.error("--strings must be at least 1")
    mnist = data.load_or_fetch(Settings.load(), args.data_dir)
    torch.set_num_threads(1)  # as bench/number_reading.py
    predictor = MNISTPredictor(args.model_path, pieces_path=args.pieces_path)
    train = mnist.train
    cut = len(train) - pieces.VALIDATION_DIGITS
    held = data.MNISTSplit(train.images[cut:], train.labels[cut:])
    rng = np.random.default_rng(args.seed)
    counts = {gap: dict.fromkeys(("right",) + GROUPS, 0) for gap in GAPS}
    start = time.perf_counter()
    for s in range(args.strings * len(GAPS)):
        gap = GAPS[s % len(GAPS)]
        idx = rng.integers(0, len(held), size=4)
        inks = [strings.digit_ink(held.images[i], rng) for i in idx]
        ink, _, placed = strings.compose(inks, gap, rng)
        grey = 1.0 - ink if (s // len(GAPS)) % 2 == 0 else ink  # both polarities, as the benchmark
        digits = [int(held.labels[i]) for i in idx]
        group = diagnose(predictor, (grey * 255 + 0.5).astype(np.uint8), strings.owners(inks, placed, ink.shape),
                         digits)
        counts[gap][group] += 1
        if args.list and group != "right":
            print(f"  {''.join(map(str, digits))} {gap}: {group}", flush=True)
    total = args.strings * len(GAPS)
    print(f"{total} four-digit strings of the {pieces.VALIDATION_DIGITS} training digits the piece network "
          f"never learnt from, {time.perf_counter() - start:.0f} s; piece network "
          f"{predictor.piece_scorer.path.name if predictor.piece_scorer is not None else 'none'}")
    print(f"{'':12}" + "".join(f"{g:>11}" for g in ("right",) + GROUPS))
    for gap in GAPS:
        print(f"{gap:12}" + "".join(f"{100 * counts[gap][g] / args.strings:10.1f}%" for g in ("right",) + GROUPS))
    share = {g: 100 * sum(c[g] for c in counts.values()) / total for g in ("right",) + GROUPS}
    print(f"read_right={share['right']:.1f} cuts={share['cuts']:.1f} misread={share['misread']:.1f} "
          f"misscored={share['misscored']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
