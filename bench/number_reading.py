#!/usr/bin/env python
"""How well are whole numbers read?  Strings of 2-6 MNIST digits composed on a canvas.

Each string is drawn the way the app hands a drawing to the reader: a grey picture about
280 px high, the digits upscaled 10x (bicubic) and placed left to right on a wide canvas;
half the strings black ink on white, half white on black.  Every string has one gap class:

    separated    2-6 px (at MNIST's 28-px scale) between the digits' boxes
    close        0-2 px between the boxes (the inks never touch)
    touching     each digit pushed against the one before until the inks touch
    overlapping  the boxes overlap by 1-3 px (the inks touch or cross in most strings)

A string counts as right only if ``MNISTPredictor.read_number`` reads it exactly.  The
digits come from the MNIST **test** set; ``--dev`` takes them from the training set
instead (what the reader's settings were chosen on; the test digits are for the final
figures only).  ``--vary`` draws them less like MNIST: a thicker pen, a slant, digits of
different heights, a drifting baseline and uneven spacing.

Last line: ``separated_acc=... touching_acc=... ms_per_digit=...`` (4-digit strings;
touching = touching and overlapping).  Goals: >= 97, >= 90, <= 10.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from app.ml import MNISTPredictor, data  # noqa: E402
from app.ml.strings import GAPS, compose, digit_ink  # noqa: E402
from app.settings import Settings  # noqa: E402

LENGTHS = (2, 3, 4, 5, 6)


@dataclass
class Sample:
    picture: np.ndarray  # uint8 grey
    text: str
    gap: str
    glued: int  # digits whose ink touches the previous digits' ink


def make_samples(split: data.MNISTSplit, n_per: dict[int, int], rng: np.random.Generator,
                 vary: bool) -> dict[tuple[str, int], list[Sample]]:
    out: dict[tuple[str, int], list[Sample]] = {}
    for gap in GAPS:
        for length in LENGTHS:
            samples = []
            for s in range(n_per[length]):
                idx = rng.integers(0, len(split), size=length)
                inks = [digit_ink(split.images[i], rng, vary) for i in idx]
                ink, glued, _ = compose(inks, gap, rng, vary)
                black_on_white = s % 2 == 0
                grey = (1.0 - ink) if black_on_white else ink
                samples.append(Sample(picture=(grey * 255 + 0.5).astype(np.uint8),
                                      text="".join(str(int(split.labels[i])) for i in idx), gap=gap,
                                      glued=glued))
            out[(gap, length)] = samples
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * (centre - half), 100 * (centre + half)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dev", action="store_true", help="compose from MNIST training digits (for tuning)")
    p.add_argument("--vary", action="store_true",
                   help="thicker pen, slant, uneven heights, drifting baseline, uneven spacing")
    p.add_argument("--strings", type=int, default=400, help="4-digit strings per gap class (default 400)")
    p.add_argument("--others", type=int, default=80,
                   help="strings per gap class for each of the other lengths (default 80)")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--model-path", type=Path, default=None)
    p.add_argument("--pieces-path", type=Path, default=None,
                   help="the piece network (default: the shipped saved_models/mnist_pieces.pth)")
    p.add_argument("--no-pieces", action="store_true", help="read with the digit network alone")
    p.add_argument("--show-errors", type=int, default=0, metavar="N", help="print N misread strings")
    args = p.parse_args()

    mnist = data.load_or_fetch(Settings.load(), args.data_dir)
    split = mnist.train if args.dev else mnist.test
    # One thread, as the app's inference worker runs (idle pool threads spinning on a busy
    # machine cost more than they give on a batch this small).
    torch.set_num_threads(1)
    predictor = MNISTPredictor(args.model_path, pieces_path=False if args.no_pieces else args.pieces_path)
    rng = np.random.default_rng(args.seed)
    n_per = {length: (args.strings if length == 4 else args.others) for length in LENGTHS}
    start = time.perf_counter()
    samples = make_samples(split, n_per, rng, args.vary)
    print(f"digits from the MNIST {'training' if args.dev else 'test'} set"
          f"{', varied (pen, slant, heights, baseline, spacing)' if args.vary else ''}; "
          f"{sum(len(v) for v in samples.values())} strings composed in {time.perf_counter() - start:.1f} s")
    scorer = predictor.piece_scorer
    print(f"digit network {predictor.model_path.name}, piece network "
          f"{scorer.path.name if scorer is not None else 'none (the digit network alone)'}")

    predictor.read_number(samples[("separated", 2)][0].picture)  # warm-up
    right: dict[tuple[str, int], int] = {}
    total_ms = 0.0
    total_digits = 0
    errors = []
    for key, group in samples.items():
        ok = 0
        for sample in group:
            t = time.perf_counter()
            reading = predictor.read_number(sample.picture)
            total_ms += (time.perf_counter() - t) * 1000
            total_digits += len(sample.text)
            if reading.text == sample.text:
                ok += 1
            elif len(errors) < args.show_errors:
                errors.append((key[0], sample.text, reading.text))
        right[key] = ok

    def acc(keys) -> tuple[float, int, int]:
        k = sum(right[key] for key in keys)
        n = sum(len(samples[key]) for key in keys)
        return 100.0 * k / n, k, n

    print(f"\n{'gap':<12}" + "".join(f"{f'{n} digits':>11}" for n in LENGTHS) + f"{'all':>9}"
          + "   digits touching the one before")
    for gap in GAPS:
        row = "".join(f"{acc([(gap, n)])[0]:10.1f}%" for n in LENGTHS)
        pairs = sum(len(s.text) - 1 for n in LENGTHS for s in samples[(gap, n)])
        touch = sum(s.glued for n in LENGTHS for s in samples[(gap, n)])
        print(f"{gap:<12}{row}{acc([(gap, n) for n in LENGTHS])[0]:8.1f}%   {100.0 * touch / pairs:5.1f}%")
    row = "".join(f"{acc([(g, n) for g in GAPS])[0]:10.1f}%" for n in LENGTHS)
    print(f"{'all':<12}{row}{acc(list(samples))[0]:8.1f}%")

    sep, sk, sn = acc([("separated", 4)])
    tou, tk, tn = acc([("touching", 4), ("overlapping", 4)])
    print(f"\n4-digit strings: separated {sep:.1f}% ({sk}/{sn}, 95% CI {wilson(sk, sn)[0]:.1f}-{wilson(sk, sn)[1]:.1f}), "
          f"touching or overlapping {tou:.1f}% ({tk}/{tn}, 95% CI {wilson(tk, tn)[0]:.1f}-{wilson(tk, tn)[1]:.1f})")
    n_strings = sum(len(v) for v in samples.values())
    print(f"time: {total_ms / n_strings:.1f} ms per string, {total_ms / total_digits:.2f} ms per digit "
          f"({n_strings} strings, {total_digits} digits)")
    for gap, truth, got in errors:
        print(f"  {gap:<12} {truth:>7} read as {got}")
    print(f"separated_acc={sep:.1f} touching_acc={tou:.1f} ms_per_digit={total_ms / total_digits:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
