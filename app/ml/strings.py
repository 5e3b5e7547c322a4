"""Strings of digits composed from single digit images, as a number is written.

``bench/number_reading.py`` measures the number reader on such strings (made of MNIST
*test* digits); ``app.ml.pieces`` learns from them (made of MNIST *training* digits) what
a whole digit cut out of a string looks like.  Each digit is upscaled to canvas size and
placed left to right with one spacing class:

    separated    2-6 px (at MNIST's 28-px scale) between the digits' boxes
    close        0-2 px between the boxes (the inks never touch)
    touching     each digit pushed against the one before until the inks touch
    overlapping  the boxes overlap by 1-3 px (the inks touch or cross in most strings)

``vary`` draws the digits less like MNIST: a thicker pen, a slant, digits of different
heights, a drifting baseline and uneven spacing.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

GAPS = ("separated", "close", "touching", "overlapping")
SCALE = 10  # MNIST px -> canvas px
SOLID = 0.3  # ink above this counts for "touching"


def digit_ink(img28: np.ndarray, rng: np.random.Generator, vary: bool = False) -> np.ndarray:
    """One MNIST digit as canvas-scale ink (0..1, full 28-px frame height, cropped to its columns)."""
    img = Image.fromarray(img28)
    height_factor = 1.0
    if vary:
        slant = rng.uniform(-0.3, 0.3)
        img = img.transform((28, 28), Image.Transform.AFFINE, (1, slant, -slant * 14, 0, 1, 0),
                            resample=Image.Resampling.BILINEAR)
        grow = int(rng.integers(0, 3))
        for _ in range(grow):
            img = Image.fromarray(np.maximum(np.asarray(img), (0.85 * np.asarray(
                img.filter(ImageFilter.MaxFilter(3)), dtype=np.float32)).astype(np.uint8)))
        height_factor = rng.uniform(0.75, 1.15)
    side = max(8, round(28 * SCALE * height_factor))
    big = np.asarray(img.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    big = np.clip(big, 0.0, 1.0)
    cols = np.flatnonzero(big.max(axis=0) > 0.05)
    return big[:, cols[0]:cols[-1] + 1]


def compose(inks: list[np.ndarray], gap: str, rng: np.random.Generator,
            vary: bool = False) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """Place the digits left to right with the gap class's spacing; returns the ink (0..1),
    how many digits touch the ink before them, and where each digit went (x, y)."""
    if gap not in GAPS:
        raise ValueError(f"unknown gap class {gap!r}; choose one of {', '.join(GAPS)}")
    drift = rng.uniform(-0.08, 0.08) * 280 if vary else 0.0
    tops = [round(k * drift + (rng.uniform(-0.04, 0.04) * 280 if vary else 0.0)) for k in range(len(inks))]
    tops = [t - min(tops) for t in tops]
    height = max(t + ink.shape[0] for t, ink in zip(tops, inks))
    margin = 40
    width = sum(ink.shape[1] for ink in inks) + 10 * SCALE * len(inks) + 2 * margin
    canvas = np.zeros((height + 2 * margin, width), np.float32)
    right = None  # rightmost solid column per canvas row so far
    glued = 0  # digits whose ink touches the ink before them
    placed = []
    x = margin
    prev_right = margin
    for k, (ink, top) in enumerate(zip(inks, tops)):
        y = top + margin
        if k > 0:
            if gap == "touching":
                left = np.full(canvas.shape[0], np.inf)
                rows = np.flatnonzero((ink > SOLID).any(axis=1))
                first = (ink[rows] > SOLID).argmax(axis=1)
                left[rows + y] = first
                both = np.isfinite(left) & (right >= 0)
                # the inks just touch (or, sharing no row, the boxes do)
                x = int(np.max(right[both] - left[both])) + 1 if both.any() else prev_right
            else:
                lo, hi = {"separated": (2, 6), "close": (0, 2), "overlapping": (-3, -1)}[gap]
                if vary and gap == "separated":
                    lo, hi = 1, 9
                x = prev_right + round(rng.uniform(lo, hi) * SCALE)
            x = max(x, margin)
        region = canvas[y:y + ink.shape[0], x:x + ink.shape[1]]
        mine = ink[:, :region.shape[1]] > SOLID
        theirs = region > SOLID
        near = theirs.copy()  # 8-neighbours of the ink already there
        near[1:] |= theirs[:-1]
        near[:-1] |= theirs[1:]
        near[:, 1:] |= near[:, :-1].copy()
        near[:, :-1] |= near[:, 1:].copy()
        glued += int((near & mine).any())
        np.maximum(region, ink[:, :region.shape[1]], out=region)
        placed.append((x, y))
        if right is None:
            right = np.full(canvas.shape[0], -1.0)
        rows = np.flatnonzero((ink > SOLID).any(axis=1))
        last = ink.shape[1] - 1 - (ink[rows, ::-1] > SOLID).argmax(axis=1)
        right[rows + y] = np.maximum(right[rows + y], last + x)
        prev_right = x + ink.shape[1]
    cols = np.flatnonzero(canvas.max(axis=0) > 0)
    return canvas[:, : cols[-1] + 1 + margin], glued, placed


def owners(inks: list[np.ndarray], placed: list[tuple[int, int]], shape: tuple[int, int]) -> np.ndarray:
    """(digits, H, W): each digit's own ink on the composed picture of ``shape``."""
    out = np.zeros((len(inks),) + tuple(shape), np.float32)
    for k, (ink, (x, y)) in enumerate(zip(inks, placed)):
        region = out[k, y:y + ink.shape[0], x:x + ink.shape[1]]
        region[...] = ink[:region.shape[0], :region.shape[1]]
    return out
