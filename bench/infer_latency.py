#!/usr/bin/env python
"""Latency of one 280x280 drawing -> probabilities (preprocess + forward), 2 000 runs.

Last line: ``p50_ms=... p99_ms=...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from app.ml import MNISTPredictor  # noqa: E402


def drawing() -> Image.Image:
    img = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(img).line([(70, 50), (210, 50), (120, 240)], fill=0, width=18, joint="curve")
    return img


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--model-path", type=Path, default=None)
    args = p.parse_args()
    predictor = MNISTPredictor(args.model_path)
    img = np.asarray(drawing())  # the canvas hands the worker a numpy array
    for _ in range(50):  # warm-up
        predictor.predict(img)
    times = np.empty(args.runs)
    for i in range(args.runs):
        t = time.perf_counter()
        predictor.predict(img)
        times[i] = (time.perf_counter() - t) * 1000
    print(f"runs={args.runs} mean_ms={times.mean():.3f} min_ms={times.min():.3f} max_ms={times.max():.3f}")
    print(f"p50_ms={np.percentile(times, 50):.3f} p99_ms={np.percentile(times, 99):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
