#!/usr/bin/env python
"""How well a model reads handwriting unlike MNIST's, how true its confidence is, and how
often it says "not a digit" for what is not one.

    python bench/robustness.py [--model PATH] [--quick]

Prints, for the model (default: the app's default weights):
- accuracy on the MNIST test set, and the share of its digits accepted as digits;
- accuracy on each development set (app/ml/devsets.py: every allograph by unseen writers,
  few-point stylus strokes, scanned-mail-like digits, unseen typed digits, and drawings
  pushed through the app's own canvas rasteriser), per allograph;
- the expected calibration error (15 bins) on MNIST test and on the scanned-like set;
- the share of non-digits (letters by unseen writers, letters typed in unseen fonts,
  shapes and scribbles) rejected.
Last line: ``styles_acc=… mnist_acc=… ece_pct=… nondigit_reject=… digit_accept=…``
(styles_acc: the allograph set; ece_pct: MNIST test; digit_accept: MNIST test).
Nothing here is trained or tuned on: the MNIST test set is only evaluated.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="weights file (default: the app's default)")
    ap.add_argument("--quick", action="store_true", help="smaller sets (a rough figure in a minute)")
    ap.add_argument("--no-canvas", action="store_true", help="skip the canvas code path set (needs Qt)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    from app import paths
    from app.ml import calibration as cal
    from app.ml import checkpoint, devsets, sources
    from app.ml.train import logits_of

    model_path = args.model or paths.bundled_model_path()
    loaded = checkpoint.load(model_path)
    model = loaded.model
    mnist = mnist_for_bench()
    _, validation = sources.split_validation(mnist.train)
    c = cal.Calibration.from_metadata(loaded.metadata)
    note = ""
    if c.digit_threshold is None:  # an uncalibrated model: calibrate it here, on the validation part
        val_logits = logits_of(model, validation.images)
        t = cal.fit_temperature(val_logits, validation.labels)
        c = cal.Calibration(t, cal.threshold_for(cal.msp_score(val_logits, t)), "msp")
        note = " (uncalibrated file: temperature and threshold fitted here on the validation part)"
    print(f"model: {model_path} ({loaded.arch}){note}")
    print(f"temperature {c.temperature:.3f}, digit score {c.score}, threshold {c.digit_threshold:.4f}")

    per = 20 if args.quick else 60
    started = time.perf_counter()
    sets = [devsets.DevSet("mnist_test", mnist.test.images, mnist.test.labels, ["mnist"] * len(mnist.test)),
            devsets.allographs(per_glyph=per),
            devsets.few_points(per_glyph=per // 2),
            devsets.scanned(validation, n=600 if args.quick else 2000),
            devsets.typed_digits()]
    if not args.no_canvas:
        sets.append(canvas_set(per_glyph=per // 3))
    nondigit_sets = [devsets.letters(500 if args.quick else 1500), devsets.typed(repeat=1 if args.quick else 3),
                     devsets.marks(400 if args.quick else 1000)]
    print(f"development sets made in {time.perf_counter() - started:.1f} s")

    results = {}
    print(f"\n{'set':16s} {'n':>6s} {'accuracy':>9s} {'accepted':>9s} {'ECE':>7s}")
    for s in sets:
        logits = logits_of(model, s.images)
        probs = c.probabilities(logits)
        pred = probs.argmax(1)
        ok = pred == s.labels
        acc = float(ok.mean()) if len(s) else float("nan")
        accepted = float((cal.digit_score(logits, c) >= c.digit_threshold).mean()) if len(s) else float("nan")
        e = cal.reliability(probs.max(1), ok).ece if len(s) else float("nan")
        results[s.name] = (acc, accepted, e, s, ok)
        print(f"{s.name:16s} {len(s):6d} {100 * acc:8.2f}% {100 * accepted:8.2f}% {100 * e:6.2f}%")
    rejected_all = []
    for s in nondigit_sets:
        if not len(s):
            print(f"{s.name:16s}      0  (no fonts: matplotlib not installed)")
            continue
        logits = logits_of(model, s.images)
        rejected = cal.digit_score(logits, c) < c.digit_threshold
        rejected_all.append(rejected)
        conf = c.probabilities(logits).max(1)
        print(f"{s.name:16s} {len(s):6d} rejected {100 * rejected.mean():6.2f}%  "
              f"mean confidence {100 * conf.mean():5.1f}%")
        by_kind = collections.defaultdict(list)
        for k, r in zip(s.kinds, rejected):
            by_kind[k.split("_")[0] if s.name == "marks" else k].append(r)
        worst = sorted(by_kind.items(), key=lambda kv: np.mean(kv[1]))[:8]
        print("    least rejected: " + ", ".join(f"{k} {100 * np.mean(v):.0f}%" for k, v in worst))

    acc, _, _, s, ok = results["allographs"]
    print("\nper allograph (unseen writers):")
    by = collections.defaultdict(list)
    for k, o in zip(s.kinds, ok):
        by[k].append(o)
    line = []
    for i, (k, v) in enumerate(sorted(by.items())):
        line.append(f"{k:20s} {100 * np.mean(v):5.1f}")
        if len(line) == 3 or i == len(by) - 1:
            print("  " + "   ".join(line))
            line = []
    scanned = results["scanned"]
    print(f"\nECE on the scanned-like set: {100 * scanned[2]:.2f}%")
    nondigit = float(np.concatenate(rejected_all).mean()) if rejected_all else float("nan")
    mnist_acc, digit_accept, mnist_ece = results["mnist_test"][:3]
    print(f"styles_acc={100 * acc:.2f} mnist_acc={100 * mnist_acc:.2f} ece_pct={100 * mnist_ece:.2f} "
          f"nondigit_reject={100 * nondigit:.2f} digit_accept={100 * digit_accept:.2f}")
    return 0


def mnist_for_bench():
    from app.ml import data
    from app.settings import Settings

    return data.load_or_fetch(Settings.load())


def canvas_set(per_glyph: int = 20, seed: int = 18):
    """Digits by unseen writers, their strokes drawn on the app's canvas (a real
    DrawingCanvas, offscreen) as a mouse would deliver them, and snapshotted as the app
    does before it predicts."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from app.ml import devsets, glyphs, synth
    from app.ml.preprocess import prepare
    from app.widgets.canvas import DrawingCanvas, Stroke

    QApplication.instance() or QApplication([])
    canvas = DrawingCanvas()
    canvas.resize(360, 360)
    rng = np.random.default_rng(seed)
    images, labels, kinds = [], [], []
    for i, g in enumerate(glyphs.digit_glyphs()):
        for _ in range(per_glyph):
            style = synth.WriterStyle.sample(int(rng.integers(synth.DEV_WRITERS.start, synth.DEV_WRITERS.stop)))
            strokes = synth.pen_strokes(g, style, rng)
            strokes, _ = synth.acquire(strokes, "mouse" if rng.random() < 0.7 else "few_points", rng)
            allp = np.concatenate(strokes)
            lo, hi = allp.min(0), allp.max(0)
            scale = rng.uniform(150, 280) / max(hi[1] - lo[1], (hi[0] - lo[0]) * 0.8, 1.0)
            offset = np.array([rng.uniform(20, 340 - (hi[0] - lo[0]) * scale) if (hi[0] - lo[0]) * scale < 320 else 20,
                               rng.uniform(20, max(21, 340 - (hi[1] - lo[1]) * scale))])
            canvas.clear()
            canvas.set_brush_size(int(rng.integers(8, 40)))
            for st in strokes:
                pts = (st - lo) * scale + offset
                stroke = Stroke()
                for x, y in pts:
                    stroke.add(QPointF(float(x), float(y)), float(canvas.brush_size()))
                canvas.add_stroke(stroke)
            try:
                images.append(prepare(canvas.snapshot()).as_uint8())
            except ValueError:
                continue
            labels.append(g.label)
            kinds.append(g.name)
    return devsets.DevSet("canvas", np.stack(images), np.array(labels), kinds)


if __name__ == "__main__":
    sys.exit(main())
