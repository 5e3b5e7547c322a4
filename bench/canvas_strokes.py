#!/usr/bin/env python
"""The drawing canvas with many strokes: does a snapshot or an undo get slower as strokes pile up?

Synthetic digit-like strokes (seeded: 12-40 samples, brush 4-60 px, one in five with
stylus pressure, one in ten erasing) are added to a 360 x 360 canvas with
``add_stroke``; at 10, 1 000 and 10 000 strokes it times, on the GUI thread:

- ``snapshot()``: the 280 px grey picture handed to the network (median of 30);
- ``undo()``: 64 undos in a row (median and worst; a raster keeps a checkpoint every
  ``CHECKPOINT_EVERY`` strokes, so the worst undo repaints that many strokes at most),
  then the 64 redos;
- adding a stroke (median of the last 200 added), and the memory the rasters hold.

Goal: the figures do not grow with the stroke count (snapshot and undo at 10 000
strokes within a few ms of those at 10).
Last line: ``snapshot_ms_10k=... undo_ms_10k=...`` (medians at 10 000 strokes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SIDE = 360
UNDOS = 64


def synthetic_strokes(count: int, seed: int = 0) -> list:
    """Digit-like strokes: smooth random curves across the canvas, drawn at a person's pace."""
    from PySide6.QtCore import QPointF

    from app.widgets.canvas import MAX_BRUSH, MIN_BRUSH, Stroke

    rng = np.random.default_rng(seed)
    strokes = []
    for _ in range(count):
        n = int(rng.integers(12, 41))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, n))
        steps = np.column_stack([np.cos(heading), np.sin(heading)]) * rng.uniform(3, 9)
        pts = np.clip(rng.uniform(60, SIDE - 60, 2) + np.cumsum(steps, axis=0), 5, SIDE - 5)
        brush = float(rng.integers(MIN_BRUSH, MAX_BRUSH + 1))
        if rng.random() < 0.2:  # a stylus
            widths = brush * (0.25 + 0.75 * np.clip(0.6 + np.cumsum(rng.normal(0, 0.08, n)), 0, 1))
        else:
            widths = np.full(n, brush)
        strokes.append(Stroke([QPointF(x, y) for x, y in pts], widths.tolist(), erase=rng.random() < 0.1))
    return strokes


def ms(f) -> float:
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def measure(app, strokes: list) -> dict[str, float]:
    from app.widgets.canvas import DrawingCanvas

    canvas = DrawingCanvas()
    canvas.resize(SIDE, SIDE)
    canvas.show()
    app.processEvents()
    adds = []
    for i, s in enumerate(strokes):
        if i >= len(strokes) - 200:
            adds.append(ms(lambda: canvas.add_stroke(s)))
        else:
            canvas.add_stroke(s)
    app.processEvents()
    snaps = [ms(canvas.snapshot) for _ in range(30)]
    undos, painted = [], []
    for _ in range(min(UNDOS, len(strokes))):
        before = canvas.rasters.painted
        undos.append(ms(canvas.undo))
        painted.append(canvas.rasters.painted - before)
    redos = [ms(canvas.redo) for _ in range(len(undos))]
    assert len(canvas.strokes) == len(strokes)
    out = dict(strokes=len(strokes), add_ms=statistics.median(adds), snapshot_ms=statistics.median(snaps),
               undo_ms=statistics.median(undos), undo_max_ms=max(undos), undo_max_painted=max(painted),
               redo_ms=statistics.median(redos), memory_mb=canvas.rasters.memory_bytes() / 2 ** 20)
    canvas.close()
    canvas.deleteLater()
    app.processEvents()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", type=int, nargs="+", default=[10, 1000, 10000])
    args = p.parse_args()

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["canvas_strokes"])
    strokes = synthetic_strokes(max(args.counts))
    print(f"{'strokes':>8} {'add ms':>8} {'snapshot ms':>12} {'undo ms':>8} {'worst undo':>11} "
          f"{'(strokes)':>9} {'redo ms':>8} {'memory MB':>10}")
    results = {}
    for n in args.counts:
        r = results[n] = measure(app, strokes[:n])
        print(f"{n:>8} {r['add_ms']:>8.2f} {r['snapshot_ms']:>12.2f} {r['undo_ms']:>8.2f} {r['undo_max_ms']:>11.2f} "
              f"{r['undo_max_painted']:>9} {r['redo_ms']:>8.2f} {r['memory_mb']:>10.1f}", flush=True)
    last = results[max(results)]
    print(f"snapshot_ms_10k={last['snapshot_ms']:.2f} undo_ms_10k={last['undo_ms']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
