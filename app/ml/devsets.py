"""Development sets: handwriting the network was never trained on, made by the project.

They measure how well the network reads people, and are never trained on:

- ``allographs``: every form of every digit (`app.ml.glyphs.DIGITS`) in the hands of
  writers training never used (`synth.DEV_WRITERS`), each device style mixed;
- ``few_points``: the same writers' digits as a stylus resampled to a few points with
  corners delivers them;
- ``scanned``: held-out MNIST training images (the validation part, never trained on)
  made to look like scanned mail: a thicker pen, deslanted, brought down to 16 x 16
  pixels and back up;
- ``letters``: letters by the same writers, the ones written like digits included
  (O, I, l, Z, S, s, b, g, q), which training never saw;
- ``typed``: letters typed in fonts training never used (matplotlib's STIX and Computer
  Modern fonts, when matplotlib is installed);
- ``marks``: shapes, scribbles, crossed-out digits and two digits side by side.

The canvas code path set (strokes through the app's own canvas rasteriser) needs Qt and
lives in ``bench/robustness.py``.  No Qt here.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app.ml import glyphs as G
from app.ml import synth
from app.ml.data import MNISTSplit


@dataclass
class DevSet:
    name: str
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # digit, or -1: not a digit
    kinds: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def allographs(per_glyph: int = 60, seed: int = 11, mode: str | None = None, name: str = "allographs") -> DevSet:
    images, labels, kinds = [], [], []
    for i, g in enumerate(G.digit_glyphs()):
        s = synth.digits(per_glyph, seed=seed * 1000 + i, writers=synth.DEV_WRITERS, digit=g.label,
                         glyph=g.name, mode=mode)
        images.append(s.images)
        labels.append(s.labels)
        kinds += s.kinds
    return DevSet(name, np.concatenate(images), np.concatenate(labels), kinds)


def few_points(per_glyph: int = 30, seed: int = 12) -> DevSet:
    return allographs(per_glyph, seed, mode="few_points", name="few_points")


def scanned(validation: MNISTSplit, n: int = 2000, seed: int = 13) -> DevSet:
    """Held-out MNIST digits as a postal scanner might deliver them."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(validation), size=min(n, len(validation)), replace=False)
    out = []
    for i in idx:
        out.append(synth.to_input(scan_style(validation.images[i], rng)))
    keep = [k for k, x in enumerate(out) if x is not None]
    return DevSet("scanned", np.stack([out[k] for k in keep]), validation.labels[idx][keep],
                  ["scanned"] * len(keep))


def scan_style(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A 28x28 white-on-black digit -> a black-on-white 64 x 64 picture that went through
    a 16 x 16 scan: thicker, deslanted, filling its box, grey and a little noisy."""
    x = digit.astype(np.float32) / 255.0
    for _ in range(int(rng.integers(0, 3))):  # a broader pen
        p = np.pad(x, 1)
        x = np.maximum(x, 0.8 * np.max([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]], axis=0))
    ys, xs = np.nonzero(x > 0.2)
    if len(xs) > 2:  # deslant: shear so the ink's main axis stands upright
        w = x[ys, xs]
        my, mx = np.average(ys, weights=w), np.average(xs, weights=w)
        slope = np.average((xs - mx) * (ys - my), weights=w) / max(np.average((ys - my) ** 2, weights=w), 1e-6)
        img = Image.fromarray((x * 255).astype(np.uint8))
        img = img.transform(img.size, Image.Transform.AFFINE, (1, slope, -slope * my, 0, 1, 0),
                            resample=Image.Resampling.BILINEAR)
        x = np.asarray(img, np.float32) / 255.0
    rows, cols = np.flatnonzero(x.max(1) > 0.1), np.flatnonzero(x.max(0) > 0.1)
    if len(rows) == 0:
        return Image.fromarray(np.full((64, 64), 255, np.uint8))
    crop = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    if rng.random() < 0.5:  # size-normalised to the box, keeping the aspect ratio
        scale = 16 / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    else:  # stretched to fill more of the box
        size = (max(1, min(16, round(w * 16 / h * rng.uniform(1.0, 1.6)))), 16)
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.Resampling.BOX)
    box = Image.new("L", (16, 16), 0)
    box.paste(small, ((16 - size[0]) // 2, (16 - size[1]) // 2))
    arr = np.asarray(box, np.float32) + rng.normal(0, 6, (16, 16))
    arr = np.clip(arr, 0, 255)
    big = Image.fromarray((255 - arr).astype(np.uint8)).resize((64, 64), Image.Resampling.BILINEAR)
    return big


def letters(n: int = 1500, seed: int = 14) -> DevSet:
    rng = np.random.default_rng(seed)
    forms = {**G.LETTERS, **G.LOOKALIKE_LETTERS}
    names = sorted(forms)
    images, kinds = [], []
    while len(images) < n:
        k = names[int(rng.integers(len(names)))]
        style = synth.WriterStyle.sample(int(rng.integers(synth.DEV_WRITERS.start, synth.DEV_WRITERS.stop)))
        img, _, _ = synth.draw(G.Glyph(f"letter_{k}", -1, tuple(forms[k])), style, rng)
        x = synth.to_input(img)
        if x is not None:
            images.append(x)
            kinds.append(f"letter_{k}")
    return DevSet("letters", np.stack(images), np.full(len(images), -1), kinds)


def dev_fonts() -> list[Path]:
    """Fonts training never used: matplotlib's STIX (a Times) and Computer Modern."""
    try:
        import matplotlib
    except ImportError:
        return []
    folder = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    names = ["STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf",
             "cmtt10.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSans-BoldOblique.ttf"]
    return [folder / f for f in names if (folder / f).is_file()]


def typed(repeat: int = 3, seed: int = 15) -> DevSet:
    fonts = dev_fonts()
    rng = np.random.default_rng(seed)
    images, kinds = [], []
    for font in fonts:
        for ch in string.ascii_letters:
            for _ in range(repeat):
                x = synth.to_input(synth.typed(ch, font, rng))
                if x is not None:
                    images.append(x)
                    kinds.append(f"typed_{ch}")
    if not images:
        return DevSet("typed", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), [])
    return DevSet("typed", np.stack(images), np.full(len(images), -1), kinds)


def typed_digits(seed: int = 16) -> DevSet:
    """Digits typed in the same unseen fonts: these must still be read (and accepted)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for font in dev_fonts():
        for d in range(10):
            for _ in range(2):
                x = synth.to_input(synth.typed(str(d), font, rng))
                if x is not None:
                    images.append(x)
                    labels.append(d)
    if not images:
        return DevSet("typed_digits", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), [])
    return DevSet("typed_digits", np.stack(images), np.array(labels), ["typed_digit"] * len(labels))


def marks(n: int = 1000, seed: int = 17) -> DevSet:
    s = synth.nondigits(n, seed=seed, writers=synth.DEV_WRITERS, fonts=[],
                        mix={"shape": 0.35, "scribble": 0.35, "crossed_out": 0.15, "two_digits": 0.15})
    return DevSet("marks", s.images, s.labels, s.kinds)
